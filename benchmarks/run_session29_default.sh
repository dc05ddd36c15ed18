#!/usr/bin/env bash
# Twenty-ninth session (2026-11-29), one H200: the default stream (KERNEL_SEARCH_STREAM unset = auto: fixed
# point at batch 1) through the GPU tests, then auto against model in the decode step (env_ab.py).
#   OUT=dir bash benchmarks/run_session29_default.sh
source benchmarks/_session.sh
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/qwen3/test_gpu.py tests/qwen3/test_kernels.py \
  tests/kernel_space/test_stream.py > "$OUT/gpu_tests_default.log" 2>&1; tail -2 "$OUT/gpu_tests_default.log"
env_ab_cells default_qwen3-0.6b qwen3-0.6b $R/dispatch_qwen3-0.6b_H100.json 1x256,1x4096,8x256 100 KERNEL_SEARCH_STREAM auto,model
env_ab_cells default_qwen3-8b qwen3-8b $R/dispatch_qwen3-8b_H100.json 1x256 80 KERNEL_SEARCH_STREAM auto,model
