#!/usr/bin/env bash
# Thirty-first session (2026-11-29), one H200: 0.6B at batch 1 against the torch.compile peer with the
# table this session's tune exported on this GPU (its "stream" and "fold" choices), e2e_matrix.py.
#   OUT=dir bash benchmarks/run_session31_matrix.sh
source benchmarks/_session.sh
T=$R/session31_H200_2026-11-29/tune/dispatch_qwen3-0.6b_H200.json
timeout 330 python3 benchmarks/e2e_matrix.py --models qwen3-0.6b --batches 1 --contexts 256,2048 \
  --arms table,torch_compile --table qwen3-0.6b=$T --out "$OUT/e2e_matrix_b1_H200_$day.json" 2>&1 \
  | quiet | grep -v "capture compiles" | tail -8 | cut -c1-200
python3 benchmarks/e2e_matrix.py --render "$OUT/e2e_matrix_b1_H200_$day.json" 2>&1 | tail -6
