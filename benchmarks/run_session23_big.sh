#!/usr/bin/env bash
# Twenty-third session (2026-11-28), one H200: at larger batches and contexts, the loop plan with prep
# separate (the default so far) against prep fused, and kv=early with prep fused in 64-slot blocks (2-6
# waves of programs), in the 0.6B and 1.7B decode steps (attn_step_probe.py, committed GEMM tables).
#   OUT=dir bash benchmarks/run_session23_big.sh
. benchmarks/_session.sh
E='"kv": "early", "prep": "fused", "num_stages": 1, "BLOCK_N": 64'
probe() {  # MODEL CONTEXT BATCHES CONFIGS...
  local model=$1 ctx=$2 batches=$3; shift 3
  local args=()
  for c in "$@"; do args+=(--config "$c"); done
  timeout 150 python3 benchmarks/attn_step_probe.py "$OUT/big_${model}_ctx$ctx.json" --model "$model" --batches "$batches" \
    --context "$ctx" --table "$R/dispatch_${model}_H100.json" --gemm-table "${args[@]}" 2>&1 \
    | quiet | grep "^batch\|Error" | cut -c1-230
}
probe qwen3-0.6b 256 32 "{$E, \"SPLITS\": 6}"
probe qwen3-0.6b 1024 8,16 "{$E, \"SPLITS\": 24}"
probe qwen3-0.6b 2048 4,8 "{$E, \"SPLITS\": 48}"
probe qwen3-0.6b 8192 1 '{"prep": "fused"}'
probe qwen3-1.7b 256 16,32 "{$E, \"SPLITS\": 6}"
