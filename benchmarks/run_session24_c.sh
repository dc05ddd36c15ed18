#!/usr/bin/env bash
# Twenty-fourth session (2026-11-28), one H200: decode attention's long-context splits, the most that run
# in two waves (the new rule) against the fewest whose last wave is full enough (the previous rule,
# KERNEL_SEARCH_ATTN_SPLITS=fewest), decode tok/s ABAB in one process (env_ab.py), committed GEMM
# tables; 8B's table without its decode_attention rows, so that the plan runs there too.
#   OUT=dir bash benchmarks/run_session24_c.sh
. benchmarks/_session.sh
V="KERNEL_SEARCH_ATTN_SPLITS fewest,most"
gemm_only_8b
env_ab_cells splits_qwen3-0.6b qwen3-0.6b "$R/dispatch_qwen3-0.6b_H100.json" \
  1x8192,1x16384,1x32768,2x8192,4x4096,8x2048,8x8192,16x4096,32x2048,32x8192 360 $V
env_ab_cells splits_qwen3-8b qwen3-8b /tmp/dispatch_qwen3-8b_gemm.json 1x8192,8x8192 200 $V
