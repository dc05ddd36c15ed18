#!/usr/bin/env bash
# Twenty-second session (2026-11-28), one H200: PDL's trigger after the wait (default) against before it
# (KERNEL_SEARCH_PDL_TRIGGER=early), in the decode step of the committed tables: tokens and logits
# equal bit for bit first, then decode tok/s ABAB (pdl_trigger_probe.py). Then the GPU tests with the
# early trigger.
#   OUT=dir bash benchmarks/run_session22_trigger.sh
. benchmarks/_session.sh
probe() {  # MODEL CELLS
  timeout 300 python3 benchmarks/pdl_trigger_probe.py "$OUT/trigger_$1.json" --model "$1" \
    --table "$R/dispatch_$1_H100.json" --cells "$2" 2>&1 | quiet | grep -v "capture compiles\|untuned" | tail -14
}
probe qwen3-0.6b 1x256,8x256,32x256,1x8192
probe qwen3-8b 1x256,32x256
probe qwen3-1.7b 1x256
KERNEL_SEARCH_PDL_TRIGGER=early timeout 200 python3 -m pytest -q -p no:cacheprovider --tb=short -x \
  tests/qwen3/test_gpu.py tests/qwen3/test_kernels.py > "$OUT/test_gpu_early_H200_$day.log" 2>&1
grep -i "passed\|failed\|error" "$OUT/test_gpu_early_H200_$day.log" | tail -8 | cut -c1-200
