#!/usr/bin/env bash
# Twenty-fourth session (2026-11-28), one H200: the model GPU tests the previous call's time limit cut,
# then the torch.compile peer of 0.6B batch 8 x 8k (e2e_matrix.py continues the previous call's file).
#   OUT=dir bash benchmarks/run_session24_e.sh
. benchmarks/_session.sh
timeout 200 python3 -m pytest -q -p no:cacheprovider --tb=short tests/qwen3/test_gpu.py \
  tests/qwen3/test_attention_dispatch.py > "$OUT/test_gpu_session24b_H200_$day.log" 2>&1
grep -i "passed\|failed\|error" "$OUT/test_gpu_session24b_H200_$day.log" | tail -8 | cut -c1-200
cp "$R/session24_H200_2026-11-28/e2e_matrix_H200_2026-11-28.json" "$OUT/"
timeout 320 python3 benchmarks/e2e_matrix.py --models qwen3-0.6b --batches 8 --contexts 8192 \
  --arms table,torch_compile --table qwen3-0.6b=$R/dispatch_qwen3-0.6b_H100.json \
  --out "$OUT/e2e_matrix_H200_2026-11-28.json" 2>&1 | quiet | grep "tok/s\|x," | tail -6 | cut -c1-200
