#!/usr/bin/env bash
# Thirty-first session (2026-11-29), one H200: the fold as built (kernel_space.combine_o_proj, the model's
# KERNEL_SEARCH_FOLD): its GPU tests, then off against on with the committed tables (env_ab.py).
#   OUT=dir bash benchmarks/run_session31_final.sh
source benchmarks/_session.sh
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/kernel_space/test_combine_o_proj.py tests/qwen3/test_fold.py \
  2>&1 | tail -3
env_ab_cells built_06b qwen3-0.6b $R/dispatch_qwen3-0.6b_H100.json 1x256,1x2048,1x8192 150 KERNEL_SEARCH_FOLD off,on
KERNEL_SEARCH_STREAM=model env_ab_cells built_06b_model qwen3-0.6b $R/dispatch_qwen3-0.6b_H100.json 1x256,1x2048 100 \
  KERNEL_SEARCH_FOLD off,on
env_ab_cells built_17b qwen3-1.7b $R/dispatch_qwen3-1.7b_H100.json 1x256,1x2048 100 KERNEL_SEARCH_FOLD off,on
env_ab_cells built_8b qwen3-8b $R/dispatch_qwen3-8b_H100.json 1x256,1x2048 100 KERNEL_SEARCH_FOLD off,on
