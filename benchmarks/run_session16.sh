#!/usr/bin/env bash
# Sixteenth session (2026-11-27), one nvidia-h100-x1 call. Step 1 runs on branch session16-l2-prefetch
# only (commit 6c20910: the prefetch kernel and its probe, taken out of main after this run, where they lost):
# 1. l2_prefetch_probe.py: the decode step with each layer's o_proj/gate_up/down weights asked into L2
#    while attention runs, at several caps, 0.6B and 8B on the committed tables;
# 2. run_session15_tables.sh: the fifteenth session's tables of 1, 2 and 4 GPUs benched side by side.
#   OUT=dir bash benchmarks/run_session16.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
R=benchmarks/results
filter() { grep -v "Warning\|warnings.warn\|capture compiles" | tail -60; }
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 200 python3 benchmarks/l2_prefetch_probe.py "$OUT/l2_prefetch_0.6b.json" --model qwen3-0.6b \
  --table $R/dispatch_qwen3-0.6b_H100.json --cells 1x256,8x256,32x256,1x2048,8x2048 --mb 0,8,16,24,40 2>&1 | filter
timeout 160 python3 benchmarks/l2_prefetch_probe.py "$OUT/l2_prefetch_8b.json" --model qwen3-8b \
  --table $R/dispatch_qwen3-8b_H100.json --cells 1x256,8x256 --mb 0,16,32,64 2>&1 | filter
OUT=$OUT bash benchmarks/run_session15_tables.sh
