#!/usr/bin/env bash
# Thirty-fourth session, one H200: 0.6B batch 32 x 2k, the matrix cell that sat at 1.19-1.22x torch.compile
# and 80-82% of its floor on the H100. Its decode attention is the plan (the 0.6B table has no attention
# rows): SPLITS 2, prep fused, the loop. attn_step_probe.py times other configs laid over the plan, alone
# and in the decode step with the committed GEMM table.
#   OUT=dir bash benchmarks/run_session34_b32.sh
source benchmarks/_session.sh
args=()
for c in '{"SPLITS": 1}' '{"SPLITS": 3}' '{"SPLITS": 4}' '{"SPLITS": 4, "combine": "kernel"}' '{"BLOCK_N": 128}' \
  '{"BLOCK_N": 32}' '{"num_warps": 8}' '{"num_stages": 3}' '{"num_stages": 1}' '{"BLOCK_N": 128, "num_warps": 8}' \
  '{"pack": "head", "num_stages": 1}'; do args+=(--config "$c"); done
timeout 500 python3 benchmarks/attn_step_probe.py "$OUT/b32_2k.json" --model qwen3-0.6b --batches 32 --context 2048 \
  --table "$R/dispatch_qwen3-0.6b_H100.json" --gemm-table "${args[@]}" 2>&1 \
  | quiet | grep -v "capture compiles\|untuned\|_check_table" | grep "^batch\|Error\|error\|plan" | cut -c1-230
