#!/usr/bin/env bash
# Eleventh session (2026-11-27): a GEMM grid of more than two programs an SM (first run: any; second
# run: over weights of more than half of L2) launches without PDL
# (kernel_space._gemm.PDL_MAX_PROGRAMS_PER_SM). The rule (KERNEL_SEARCH_PDL=1) against PDL on every
# launch as before (=all), ABAB, both committed tables.
#   OUT=dir bash benchmarks/run_session11_pdl_rule.sh
. benchmarks/_session.sh
timeout 300 python3 benchmarks/env_ab.py "$OUT/pdl_rule${RUN:-}_8b.json" --model qwen3-8b --env KERNEL_SEARCH_PDL --values 1,all \
  --table $R/dispatch_qwen3-8b_H100.json --cells ${CELLS8:-32x256,32x2048,8x256,1x256} 2>&1 | quiet | grep "tok/s\|Error\|error" | cut -c1-140
timeout 200 python3 benchmarks/env_ab.py "$OUT/pdl_rule${RUN:-}_0.6b.json" --model qwen3-0.6b --env KERNEL_SEARCH_PDL --values 1,all \
  --table $R/dispatch_qwen3-0.6b_H100.json --cells 1x256,8x256,32x256,32x2048 2>&1 | quiet | grep "tok/s\|Error\|error" | cut -c1-140
