#!/usr/bin/env bash
# Thirty-first session (2026-11-29), one H200: decode attention's combine folded into o_proj, measured
# before building it (combine_fold_probe.py), committed tables, batch 1. The first call (fold_06b,
# fold_06b_model, fold_17b) ran the table's o_proj tile only; the second (STEP=heads: heads_*) added tiles
# of whole heads, with fewer programs repeating each combine; the third (control_*) the same tiles
# without the fold (tile<i>), to tell the fold's share from the tile's.
#   OUT=dir bash benchmarks/run_session31_fold.sh
source benchmarks/_session.sh
HEADS=(--fold-config '{"BLOCK_K": 128, "SPLIT_K": 16, "BLOCK_N": 128}'
       --fold-config '{"BLOCK_K": 128, "SPLIT_K": 16, "BLOCK_N": 64}'
       --fold-config '{"BLOCK_K": 128, "SPLIT_K": 16, "BLOCK_N": 32}')
fold() {  # NAME MODEL CELLS ROUNDS STREAM [--fold-config JSON ...]
  local name=$1 model=$2 cells=$3 rounds=$4 stream=$5; shift 5
  KERNEL_SEARCH_STREAM=$stream timeout 260 python3 benchmarks/combine_fold_probe.py "$OUT/$name.json" --model "$model" \
    --table "$R/dispatch_${model}_H100.json" --cells "$cells" --rounds "$rounds" "$@" 2>&1 \
    | quiet | grep -v "capture compiles\|untuned\|_check_table" | grep "x [0-9]*:\|Error\|error:\|wrong" | cut -c1-160
}
if [ "${STEP:-control}" = heads ]; then
HEADS=(--fold-config '{"BLOCK_K": 128, "SPLIT_K": 16, "BLOCK_N": 128}'
       --fold-config '{"BLOCK_K": 128, "SPLIT_K": 16, "BLOCK_N": 256, "num_warps": 8}'
       --fold-config '{"BLOCK_K": 128, "SPLIT_K": 16, "BLOCK_N": 64}'
       --fold-config '{"BLOCK_K": 256, "SPLIT_K": 8, "BLOCK_N": 128}')
fold heads_06b qwen3-0.6b 1x256,1x2048 3 auto "${HEADS[@]}"
fold heads_06b_model qwen3-0.6b 1x256,1x2048 2 model "${HEADS[@]}"
fold heads_17b qwen3-1.7b 1x256,1x2048 2 auto "${HEADS[@]}"
exit 0
fi
fold control_06b qwen3-0.6b 1x256,1x2048,1x8192 3 auto "${HEADS[@]}"
fold control_06b_model qwen3-0.6b 1x256,1x2048 2 model "${HEADS[@]}"
fold control_17b qwen3-1.7b 1x256,1x2048 2 auto "${HEADS[@]}"
