#!/usr/bin/env bash
# Twenty-ninth session (2026-11-29), one H200: the fixed-point residual stream (KERNEL_SEARCH_STREAM=fixed:
# int64 in units of 2^-24, split-K adds by integer atomics, one sum in any order) beside fp32 and the
# model dtype, committed tables (their GEMM hashes restamped after the PTX check): logits against fp32
# weights with a repeat of each wide arm (stream_parity.py), then decode tok/s, three values ABC ABC.
#   OUT=dir bash benchmarks/run_session29_fixed.sh
source benchmarks/_session.sh
timeout 150 python3 benchmarks/stream_parity.py "$OUT/parity_0.6b.json" --model qwen3-0.6b \
  --table $R/dispatch_qwen3-0.6b_H100.json --batches 1,8 2>&1 | quiet | grep "batch\|Error" | cut -c1-170
env_ab_cells stream3_qwen3-0.6b qwen3-0.6b $R/dispatch_qwen3-0.6b_H100.json 1x256,8x256,32x256,1x2048 150 \
  KERNEL_SEARCH_STREAM model,fp32,fixed
env_ab_cells stream3_qwen3-1.7b qwen3-1.7b $R/dispatch_qwen3-1.7b_H100.json 1x256,8x256 90 KERNEL_SEARCH_STREAM model,fp32,fixed
env_ab_cells stream3_qwen3-8b qwen3-8b $R/dispatch_qwen3-8b_H100.json 1x256,8x256 120 KERNEL_SEARCH_STREAM model,fp32,fixed
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/kernel_space/test_stream.py > "$OUT/gpu_tests_stream.log" 2>&1
tail -2 "$OUT/gpu_tests_stream.log"
