#!/usr/bin/env bash
# Thirty-first session (2026-11-29), one H200: what the decode step would gain at most if the attention's
# combine were folded into o_proj (issue 10): attn_step_probe.py --skip-combine, committed GEMM tables.
#   OUT=dir bash benchmarks/run_session31_combine.sh
source benchmarks/_session.sh
probe() {  # NAME MODEL CONTEXT BATCHES
  timeout 170 python3 benchmarks/attn_step_probe.py "$OUT/$1.json" --model "$2" --batches "$4" --context "$3" \
    --table "$R/dispatch_${2}_H100.json" --gemm-table --skip-combine 2>&1 \
    | quiet | grep -v "capture compiles\|untuned\|_check_table" | grep "^batch\|Error\|error" | cut -c1-200
}
probe combine_06b_256 qwen3-0.6b 256 1,8
probe combine_06b_2k qwen3-0.6b 2048 1
probe combine_8b_256 qwen3-8b 256 1
