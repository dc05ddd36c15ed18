#!/usr/bin/env bash
# Eighth session (2026-11-26), last nvidia-h100-x1 call: the GPU tests of the prefill path with the
# prompt kernel of qk_norm_rope_cache (parity with transformers at a 2,048-token prompt, prefill graphs
# against eager, the kernel tests on the GPU in bf16).
#   OUT=dir bash benchmarks/run_session8_x1e.sh
. benchmarks/_session.sh
timeout 400 python3 -m pytest -q -p no:cacheprovider --tb=short tests/qwen3/test_gpu.py tests/qwen3/test_kernels.py \
  tests/kernel_space/test_prefill.py > "$OUT/test_gpu_session8_H100_$day.log" 2>&1
tail -4 "$OUT/test_gpu_session8_H100_$day.log"
