#!/usr/bin/env bash
# Twenty-ninth session (2026-11-29), one H200: where the fp32 stream's time goes (step_timeline.py, 0.6B
# batch 1 and 8 x 256, KERNEL_SEARCH_STREAM model and fp32), the GPU tests (default stream, then the model
# and kernel tests with the fp32 stream), and 8B's logits against fp32 weights with the final kernels.
#   OUT=dir bash benchmarks/run_session29_final.sh
source benchmarks/_session.sh
T=/tmp/restamped
mkdir -p $T
for m in qwen3-0.6b qwen3-8b; do python3 benchmarks/restamp_table.py $R/dispatch_${m}_H100.json $T/dispatch_${m}_H100.json; done
for s in model fp32; do
  KERNEL_SEARCH_STREAM=$s timeout 120 python3 benchmarks/step_timeline.py "$OUT/timeline_$s.json" --model qwen3-0.6b \
    --table $T/dispatch_qwen3-0.6b_H100.json --cells 1x256,8x256 2>&1 | quiet | grep -v "capture compiles\|untuned\|_check_table" | tail -30
done
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/kernel_space/test_stream.py tests/qwen3/test_gpu.py \
  tests/qwen3/test_kernels.py > "$OUT/gpu_tests.log" 2>&1; tail -3 "$OUT/gpu_tests.log"
KERNEL_SEARCH_STREAM=fp32 timeout 150 python3 -m pytest -q -p no:cacheprovider tests/qwen3/test_gpu.py \
  > "$OUT/gpu_tests_fp32_stream.log" 2>&1; tail -3 "$OUT/gpu_tests_fp32_stream.log"
timeout 200 python3 benchmarks/stream_parity.py "$OUT/parity_8b.json" --model qwen3-8b --table $T/dispatch_qwen3-8b_H100.json \
  --batches 1,8 2>&1 | quiet | grep "batch\|Error" | cut -c1-160
