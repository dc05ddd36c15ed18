#!/usr/bin/env bash
# Eighteenth session (2026-11-27): the GPU tests with the norm gains folded: the model (bf16 parity with
# transformers, graphs, bench), the kernels in bf16, prefill, and the ops' folded-gain and rescan tests
# (which run on the GPU there, with the real compiler).
#   OUT=dir bash benchmarks/run_session18_tests.sh
. benchmarks/_session.sh
timeout 500 python3 -m pytest -q -p no:cacheprovider --tb=short tests/qwen3/test_gpu.py tests/qwen3/test_kernels.py \
  tests/qwen3/test_model.py tests/kernel_space/test_prefill.py \
  "tests/kernel_space/test_ops.py::test_a_folded_gain_computes_what_the_gain_in_the_loop_computes" \
  "tests/kernel_space/test_ops.py::test_fused_matches_reference" \
  > "$OUT/test_gpu_session18_H100_$day.log" 2>&1
grep -i "passed\|failed\|error" "$OUT/test_gpu_session18_H100_$day.log" | tail -12 | cut -c1-200
