#!/usr/bin/env bash
# Thirtieth session (2026-11-29), one H200: the fixed-point stream's NaN through the GPU tests, then a new
# user's tune of Qwen3-0.6B's GEMM sites at batch 1 and 8 that ends in the step check, which now times the
# new table with its residual stream in the model dtype and in fixed point and ships the faster per batch;
# the table exported, and benched as a user would.
#   OUT=dir bash benchmarks/run_session30_stream.sh
source benchmarks/_session.sh
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/kernel_space/test_stream.py tests/qwen3/test_stream.py \
  tests/qwen3/test_gpu.py > "$OUT/gpu_tests.log" 2>&1; tail -3 "$OUT/gpu_tests.log"
OUT=$OUT bash benchmarks/run_session30_tune.sh
