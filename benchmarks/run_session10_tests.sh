#!/usr/bin/env bash
# Tenth session (2026-11-27): the GPU tests: the model (parity with transformers, graphs, bench),
# the kernels in bf16 on the GPU, prefill, decode attention (with its prep), and the 64-row tile.
#   OUT=dir bash benchmarks/run_session10_tests.sh
. benchmarks/_session.sh
timeout 540 python3 -m pytest -q -p no:cacheprovider --tb=short tests/qwen3/test_gpu.py tests/qwen3/test_kernels.py \
  tests/kernel_space/test_prefill.py tests/kernel_space/test_decode_attention.py \
  tests/kernel_space/test_decode_attention_prep.py "tests/kernel_space/test_ops.py::test_a_64_row_tile_between_16_and_64_rows_matches_reference" \
  > "$OUT/test_gpu_session10_H100_$day.log" 2>&1
grep -i "passed\|failed\|error" "$OUT/test_gpu_session10_H100_$day.log" | tail -12 | cut -c1-200
