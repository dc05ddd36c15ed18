#!/usr/bin/env bash
# Issue 10, item 4: one cooperative launch for a decode step (benchmarks/persistent_probe.py) beside today's
# one launch a kernel: the GEMV chain, then whole layers with attention at 256 slots; 0.6B, then 8B; the
# committed tables' M = 1 configs; the grid barriers alone. The thirteenth session's sweep: the first
# (tiles of up to 64 rows) lost 1.7-3.6x, and its tiles held 4x the elements a thread of the tuned
# GEMVs (16 rows x 512); this one caps the tiles at 8 or 16 rows and times the barriers alone. Every run
# writes its file after each row, under a timeout of its own (a barrier that never opened would hold the
# GPU until the call's limit).
#   OUT=dir bash benchmarks/run_persistent_probe.sh
. benchmarks/_session.sh
sweep() {  # model mode timeout probe-options...
  local m=$1 mode=$2 limit=$3; shift 3
  local extra=(); [ "$mode" = layer ] && extra=(--layer --context 256)
  echo "== qwen3-$m $mode"
  timeout "$limit" python3 benchmarks/persistent_probe.py "$OUT/persistent_${mode}_qwen3-${m}.json" --model qwen3-$m \
    --table $R/dispatch_qwen3-${m}_H100.json "${extra[@]}" "$@" 2>&1 | quiet | tail -18 | cut -c1-150
}
sweep 0.6b chain 150 --programs 132,264 --warps 4,8 --block-k 512 --block-n 8,16
sweep 0.6b layer 120 --programs 132 --warps 4,8 --block-k 512 --block-n 8,16
sweep 8b chain 150 --programs 132,264 --warps 4,8 --block-k 512 --block-n 16
sweep 8b layer 150 --programs 132 --warps 4,8 --block-k 256,512 --block-n 16
