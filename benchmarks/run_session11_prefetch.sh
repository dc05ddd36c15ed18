#!/usr/bin/env bash
# Eleventh session (2026-11-27): the GEMMs' early weight prefetch, all / fit-in-L2 / none, in the
# decode step with the committed tables (prefetch_ab.py), 8B and 0.6B, ABC ABC.
#   OUT=dir bash benchmarks/run_session11_prefetch.sh
. benchmarks/_session.sh
timeout 300 python3 benchmarks/prefetch_ab.py "$OUT/prefetch_ab_8b.json" --model qwen3-8b \
  --table $R/dispatch_qwen3-8b_H100.json --cells 32x256,1x256,8x2048 2>&1 | quiet | grep "tok/s\|Error\|error" | cut -c1-140
timeout 200 python3 benchmarks/prefetch_ab.py "$OUT/prefetch_ab_0.6b.json" --model qwen3-0.6b \
  --table $R/dispatch_qwen3-0.6b_H100.json --cells 1x256,32x256 2>&1 | quiet | grep "tok/s\|Error\|error" | cut -c1-140
