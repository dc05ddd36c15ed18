#!/usr/bin/env bash
# Eleventh session (2026-11-27): one 8B matrix cell (batch 32 x 2k: 88.2% of the floor in the tenth
# session) with the PDL rule over large weights, table beside torch.compile, the committed table.
#   OUT=dir bash benchmarks/run_session11_matrix.sh
. benchmarks/_session.sh
timeout 330 python3 benchmarks/e2e_matrix.py --table qwen3-8b=$R/dispatch_qwen3-8b_H100.json --models qwen3-8b \
  --contexts 2048 --batches 32 --arms table,torch_compile --out "$OUT/e2e_matrix_qwen3-8b_b32_2048.json" 2>&1 \
  | quiet | grep -i "tok/s\|table /\|error\|floor" | cut -c1-160
