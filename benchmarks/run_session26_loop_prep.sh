#!/usr/bin/env bash
# Twenty-sixth session (2026-11-28), one H200: the loop plan from the qkv rows with its q/k prep inside the
# attention kernel from LOOP_PREP_FUSED_MIN_BATCH sequences past LONG_CONTEXT slots (the new rule) against
# the prep kernel separate (KERNEL_SEARCH_ATTN_LOOP_PREP=separate, the rule before), decode tok/s ABAB in
# one process (env_ab.py), committed GEMM tables; 8B's table without its decode_attention rows, so that
# the plan runs there too.
#   OUT=dir [CELLS_06=...] [SECS_06=s] [CELLS_8=...] [SECS_8=s] bash benchmarks/run_session26_loop_prep.sh
# The first call ran the default cells; the second, CELLS_06=32x2048,4x4096 CELLS_8=8x2048,4x4096,32x2048
# (the new rule bounded at LOOP_PREP_FUSED_MAX_CONTEXT after the first call showed 8B batch 8 x 8k slower).
. benchmarks/_session.sh
V="KERNEL_SEARCH_ATTN_LOOP_PREP separate,fused"
gemm_only_8b
env_ab_cells loop_prep_qwen3-0.6b qwen3-0.6b "$R/dispatch_qwen3-0.6b_H100.json" \
  "${CELLS_06:-4x2048,8x2048,16x2048,8x4096,16x4096,4x8192,8x8192,32x8192}" "${SECS_06:-330}" $V
env_ab_cells loop_prep_qwen3-8b qwen3-8b /tmp/dispatch_qwen3-8b_gemm.json "${CELLS_8:-8x8192,16x4096}" "${SECS_8:-170}" $V
