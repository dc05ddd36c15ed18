#!/usr/bin/env bash
# Twenty-second session (2026-11-28), one H200: the attention plan with kv=early at short contexts against
# the loop plan (KERNEL_SEARCH_ATTN_EARLY=1 / 0), decode tok/s ABAB in one process (env_ab.py), committed
# tables; then the attention and model GPU tests.
#   OUT=dir bash benchmarks/run_session22_plan.sh
. benchmarks/_session.sh
ab() {  # MODEL CELLS
  timeout 220 python3 benchmarks/env_ab.py "$OUT/plan_early_$1.json" --model "$1" --table "$R/dispatch_$1_H100.json" \
    --cells "$2" --env KERNEL_SEARCH_ATTN_EARLY --values 0,1 --rounds 2 2>&1 | quiet \
    | grep -v "capture compiles\|untuned\|_check_table" | tail -24 | cut -c1-160
}
ab qwen3-0.6b 1x256,1x512,1x1000,2x256,4x256,8x100
ab qwen3-1.7b 1x256
timeout 240 python3 -m pytest -q -p no:cacheprovider --tb=short tests/kernel_space/test_decode_attention.py \
  tests/qwen3/test_gpu.py > "$OUT/test_gpu_session22_H200_$day.log" 2>&1
grep -i "passed\|failed\|error" "$OUT/test_gpu_session22_H200_$day.log" | tail -8 | cut -c1-200
