#!/usr/bin/env bash
# Seventeenth session (2026-11-27), nvidia-h100-x1: the 0.6B matrix cells at batch 1 and 32, context 256
# and 2k, table (greedy argmax now inside the decode graph) beside torch.compile.
#   OUT=dir bash benchmarks/run_session17_matrix.sh
. benchmarks/_session.sh
timeout 560 python3 benchmarks/e2e_matrix.py --models qwen3-0.6b --batches 1,32 --contexts 256,2048 \
  --arms table,torch_compile --table qwen3-0.6b=$R/dispatch_qwen3-0.6b_H100.json \
  --out "$OUT/e2e_matrix_0.6b_H100_${day}.json" 2>&1 | quiet | tail -30
python3 benchmarks/e2e_matrix.py --render "$OUT/e2e_matrix_0.6b_H100_${day}.json" 2>&1 | tail -20
