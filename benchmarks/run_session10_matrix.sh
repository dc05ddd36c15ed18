#!/usr/bin/env bash
# Tenth session (2026-11-27): matrix cells at batch 32 x 2k, table beside torch.compile: 8B (never
# measured against the peer) and 0.6B (1.198x last session), with the committed tables.
#   OUT=dir bash benchmarks/run_session10_matrix.sh
. benchmarks/_session.sh
T="--table qwen3-0.6b=$R/dispatch_qwen3-0.6b_H100.json --table qwen3-8b=$R/dispatch_qwen3-8b_H100.json"
for m in qwen3-8b qwen3-0.6b; do
  timeout 280 python3 benchmarks/e2e_matrix.py $T --models $m --contexts 2048 --batches 32 \
    --arms table,torch_compile --out "$OUT/e2e_matrix_${m}_b32_2k.json" 2>&1 | quiet | grep -i "tok/s\|table /\|error" | cut -c1-160
done
