#!/usr/bin/env bash
# Twenty-second session (2026-11-28), one H200: decode attention with its one-block chunk loaded before
# PDL's wait (kv=early) against the plan, alone and in the 0.6B decode step (attn_step_probe.py,
# committed GEMM table); the plan measured first and again last ('{}').
#   OUT=dir bash benchmarks/run_session22_early_kv.sh
. benchmarks/_session.sh
E='"kv": "early", "num_stages": 1'
probe() {  # CONTEXT BATCHES CONFIGS...
  local ctx=$1 batches=$2; shift 2
  local args=()
  for c in "$@"; do args+=(--config "$c"); done
  timeout 280 python3 benchmarks/attn_step_probe.py "$OUT/early_kv_ctx$ctx.json" --model qwen3-0.6b --batches "$batches" \
    --context "$ctx" --table "$R/dispatch_qwen3-0.6b_H100.json" --gemm-table "${args[@]}" --config '{}' 2>&1 \
    | quiet | grep -v "capture compiles\|untuned\|_check_table" | tail -25 | cut -c1-220
}
probe 256 1,8 "{$E, \"SPLITS\": 8, \"combine\": \"last_program\"}" "{$E, \"SPLITS\": 6, \"combine\": \"last_program\"}" \
  "{$E, \"SPLITS\": 8, \"combine\": \"kernel\"}" "{$E, \"SPLITS\": 3, \"BLOCK_N\": 128, \"num_warps\": 8, \"combine\": \"last_program\"}" \
  "{$E, \"SPLITS\": 12, \"BLOCK_N\": 32, \"combine\": \"last_program\"}"
probe 2048 1 "{$E, \"SPLITS\": 48, \"combine\": \"kernel\"}" "{$E, \"SPLITS\": 64, \"combine\": \"kernel\"}" \
  "{$E, \"SPLITS\": 24, \"BLOCK_N\": 128, \"num_warps\": 8, \"combine\": \"kernel\"}"
