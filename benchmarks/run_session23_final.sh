#!/usr/bin/env bash
# Twenty-third session (2026-11-28), one H200: the final plan_from_qkv (kv=early with prep fused in 32-slot
# blocks up to a wave, 64-slot blocks up to 3 waves) against the plan before this session
# (KERNEL_SEARCH_ATTN_PREP=separate: attention_plan, prep separate), decode tok/s ABAB in one process
# (env_ab.py), committed tables; then the attention and model GPU tests.
#   OUT=dir bash benchmarks/run_session23_final.sh
. benchmarks/_session.sh
ab() {  # MODEL CELLS
  timeout 200 python3 benchmarks/env_ab.py "$OUT/final_$1.json" --model "$1" --table "$R/dispatch_$1_H100.json" \
    --cells "$2" --env KERNEL_SEARCH_ATTN_PREP --values separate,fused --rounds 2 2>&1 | quiet \
    | grep -v "capture compiles\|untuned\|_check_table" | tail -24 | cut -c1-160
}
ab qwen3-0.6b 1x256,4x256,8x512,4x1024,16x256,1x4000
ab qwen3-1.7b 8x256,16x256
timeout 230 python3 -m pytest -q -p no:cacheprovider --tb=short tests/kernel_space/test_decode_attention_prep.py \
  tests/kernel_space/test_decode_attention.py tests/qwen3/test_gpu.py tests/qwen3/test_attention_dispatch.py \
  > "$OUT/test_gpu_session23c_H200_$day.log" 2>&1
grep -i "passed\|failed\|error" "$OUT/test_gpu_session23c_H200_$day.log" | tail -8 | cut -c1-200
