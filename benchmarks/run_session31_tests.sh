#!/usr/bin/env bash
# Thirty-first session (2026-11-29), one H200: the GPU tests of the final tree's attention, model and fold
# paths (the CPU suite runs them under the interpreter).
#   OUT=dir bash benchmarks/run_session31_tests.sh
source benchmarks/_session.sh
timeout 420 python3 -m pytest -q -p no:cacheprovider -x tests/kernel_space/test_combine_o_proj.py tests/qwen3/test_fold.py \
  tests/qwen3/test_gpu.py tests/kernel_space/test_decode_attention_prep.py tests/qwen3/test_kernels.py \
  tests/kernel_space/test_stream.py 2>&1 | tail -4
