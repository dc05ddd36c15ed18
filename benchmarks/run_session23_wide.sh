#!/usr/bin/env bash
# Twenty-third session (2026-11-28), one H200: plan_from_qkv with 64-slot early blocks up to 1.5 waves
# (batch 4 and 8 x 256, batch 1 x 2k, batch 2 x 1k) against the loop plan (KERNEL_SEARCH_ATTN_EARLY=0 / 1),
# decode tok/s ABAB in one process (env_ab.py), committed tables; batch 8 x 512 and 16 x 256 run the
# loop plan either way (controls). Then the attention and model GPU tests.
#   OUT=dir bash benchmarks/run_session23_wide.sh
. benchmarks/_session.sh
ab() {  # MODEL CELLS
  timeout 230 python3 benchmarks/env_ab.py "$OUT/wide_$1.json" --model "$1" --table "$R/dispatch_$1_H100.json" \
    --cells "$2" --env KERNEL_SEARCH_ATTN_EARLY --values 0,1 --rounds 2 2>&1 | quiet \
    | grep -v "capture compiles\|untuned\|_check_table" | tail -24 | cut -c1-160
}
ab qwen3-0.6b 4x256,8x256,1x2048,2x1024,8x512,16x256
ab qwen3-1.7b 4x256,8x256,1x2048
timeout 200 python3 -m pytest -q -p no:cacheprovider --tb=short tests/kernel_space/test_decode_attention_prep.py \
  tests/kernel_space/test_decode_attention.py tests/qwen3/test_gpu.py -k "early or plan or bench or parity" \
  > "$OUT/test_gpu_session23b_H200_$day.log" 2>&1
grep -i "passed\|failed\|error" "$OUT/test_gpu_session23b_H200_$day.log" | tail -8 | cut -c1-200
