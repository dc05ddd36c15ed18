#!/usr/bin/env bash
# Twenty-fourth session (2026-11-28), one H200: the GPU tests of the attention kernels, the plan, the
# GEMM space and the model; then the end-to-end matrix's long-context cells of 0.6B (batch 1, 8, 32 x 8k)
# with the new split rule, table against the torch.compile peer in the same process (e2e_matrix.py).
#   OUT=dir bash benchmarks/run_session24_d.sh
. benchmarks/_session.sh
timeout 230 python3 -m pytest -q -p no:cacheprovider --tb=short tests/kernel_space/test_decode_attention.py \
  tests/kernel_space/test_decode_attention_prep.py tests/kernel_space/test_spec.py tests/qwen3/test_gpu.py \
  tests/qwen3/test_attention_dispatch.py > "$OUT/test_gpu_session24_H200_$day.log" 2>&1
grep -i "passed\|failed\|error" "$OUT/test_gpu_session24_H200_$day.log" | tail -8 | cut -c1-200
timeout 340 python3 benchmarks/e2e_matrix.py --models qwen3-0.6b --batches 1,8,32 --contexts 8192 \
  --arms table,torch_compile --table qwen3-0.6b=$R/dispatch_qwen3-0.6b_H100.json \
  --out "$OUT/e2e_matrix_H200_$day.json" 2>&1 | quiet | grep -v "capture compiles\|untuned\|_check_table" | tail -12 | cut -c1-200
python3 benchmarks/e2e_matrix.py --render "$OUT/e2e_matrix_H200_$day.json" 2>&1 | tail -12
