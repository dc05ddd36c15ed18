#!/usr/bin/env bash
# Eleventh session (2026-11-27). First call: the GEMMs' early weight prefetch, all / fit-in-L2 / none
# (KERNEL_SEARCH_W_PREFETCH of a commit since reverted: no policy won). Second: PDL on and off.
#   OUT=dir bash benchmarks/run_session11_prefetch.sh
. benchmarks/_session.sh
timeout 330 python3 benchmarks/env_ab.py "$OUT/pdl_ab_8b.json" --model qwen3-8b --env KERNEL_SEARCH_PDL --values 1,0 \
  --table $R/dispatch_qwen3-8b_H100.json --cells 32x256,1x256,8x256,32x2048 2>&1 | quiet | grep "tok/s\|Error\|error" | cut -c1-140
timeout 200 python3 benchmarks/env_ab.py "$OUT/pdl_ab_0.6b.json" --model qwen3-0.6b --env KERNEL_SEARCH_PDL --values 1,0 \
  --table $R/dispatch_qwen3-0.6b_H100.json --cells 1x256,8x256,32x256 2>&1 | quiet | grep "tok/s\|Error\|error" | cut -c1-140
