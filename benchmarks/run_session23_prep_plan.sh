#!/usr/bin/env bash
# Twenty-third session (2026-11-28), one H200: the plan from the qkv rows with prep fused where it loads
# K/V early (plan_from_qkv) against prep separate (KERNEL_SEARCH_ATTN_PREP=separate / fused), decode
# tok/s ABAB in one process (env_ab.py), committed tables; wider early blocks at batch 4 and 8 in the
# step (attn_step_probe.py); then the attention and model GPU tests.
#   OUT=dir bash benchmarks/run_session23_prep_plan.sh
. benchmarks/_session.sh
ab() {  # MODEL CELLS
  timeout 200 python3 benchmarks/env_ab.py "$OUT/prep_plan_$1.json" --model "$1" --table "$R/dispatch_$1_H100.json" \
    --cells "$2" --env KERNEL_SEARCH_ATTN_PREP --values separate,fused --rounds 2 2>&1 | quiet \
    | grep -v "capture compiles\|untuned\|_check_table" | tail -16 | cut -c1-160
}
ab qwen3-0.6b 1x256,2x256,1x512,1x900
ab qwen3-1.7b 1x256,2x256
E='"kv": "early", "prep": "fused", "num_stages": 1'
timeout 150 python3 benchmarks/attn_step_probe.py "$OUT/early_wide_ctx256.json" --model qwen3-0.6b --batches 4,8 \
  --context 256 --table "$R/dispatch_qwen3-0.6b_H100.json" --gemm-table \
  --config "{$E, \"SPLITS\": 6, \"BLOCK_N\": 64}" --config "{$E, \"SPLITS\": 3, \"BLOCK_N\": 128, \"num_warps\": 8}" \
  --config '{}' 2>&1 | quiet | grep "^batch\|Error" | cut -c1-230
timeout 200 python3 -m pytest -q -p no:cacheprovider --tb=short tests/kernel_space/test_decode_attention_prep.py \
  tests/qwen3/test_gpu.py tests/qwen3/test_attention_dispatch.py > "$OUT/test_gpu_session23_H200_$day.log" 2>&1
grep -i "passed\|failed\|error" "$OUT/test_gpu_session23_H200_$day.log" | tail -8 | cut -c1-200
