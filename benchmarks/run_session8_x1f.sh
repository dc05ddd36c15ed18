#!/usr/bin/env bash
# Eighth session (2026-11-26): the two GPU tests that failed in run_session8_x1e.sh, after their fixes.
#   OUT=dir bash benchmarks/run_session8_x1f.sh
. benchmarks/_session.sh
timeout 200 python3 -m pytest -q -p no:cacheprovider --tb=short \
  tests/qwen3/test_gpu.py::test_bench_runs_both_arms_with_a_breakdown tests/qwen3/test_kernels.py::test_kernel_input_errors \
  > "$OUT/test_gpu_session8_rerun_H100_$day.log" 2>&1
tail -3 "$OUT/test_gpu_session8_rerun_H100_$day.log"
