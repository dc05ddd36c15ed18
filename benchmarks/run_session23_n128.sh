#!/usr/bin/env bash
# Twenty-third session (2026-11-28), one H200: kv=early with prep fused where plan_from_qkv keeps the loop
# plan (more than 1.5 waves of 64-slot programs): 128-slot blocks with 8 warps, and 64-slot blocks past 1.5
# waves, against the loop plan, alone and in the 0.6B decode step (attn_step_probe.py, committed GEMM table).
#   OUT=dir bash benchmarks/run_session23_n128.sh
. benchmarks/_session.sh
E='"kv": "early", "prep": "fused", "num_stages": 1'
probe() {  # CONTEXT BATCHES CONFIGS...
  local ctx=$1 batches=$2; shift 2
  local args=()
  for c in "$@"; do args+=(--config "$c"); done
  timeout 150 python3 benchmarks/attn_step_probe.py "$OUT/n128_ctx$ctx.json" --model qwen3-0.6b --batches "$batches" \
    --context "$ctx" --table "$R/dispatch_qwen3-0.6b_H100.json" --gemm-table "${args[@]}" --config '{}' 2>&1 \
    | quiet | grep "^batch\|Error" | cut -c1-230
}
probe 512 8 "{$E, \"SPLITS\": 6, \"BLOCK_N\": 128, \"num_warps\": 8}" "{$E, \"SPLITS\": 12, \"BLOCK_N\": 64}"
probe 256 16 "{$E, \"SPLITS\": 3, \"BLOCK_N\": 128, \"num_warps\": 8}" "{$E, \"SPLITS\": 6, \"BLOCK_N\": 64}"
probe 4000 1 "{$E, \"SPLITS\": 32, \"BLOCK_N\": 128, \"num_warps\": 8}" "{$E, \"SPLITS\": 64, \"BLOCK_N\": 64}"
probe 1024 4 "{$E, \"SPLITS\": 12, \"BLOCK_N\": 128, \"num_warps\": 8}" "{$E, \"SPLITS\": 24, \"BLOCK_N\": 64}"
