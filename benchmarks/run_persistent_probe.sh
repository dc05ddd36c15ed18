#!/usr/bin/env bash
# Issue 10, item 4: one cooperative launch for a decode step (benchmarks/persistent_probe.py) beside today's
# one launch a kernel: the GEMV chain, then whole layers with attention at 256 slots; 0.6B, then 8B; the
# committed tables' M = 1 configs; the grid barriers alone. The thirteenth session's sweeps: the first
# (tiles of up to 64 rows) lost 1.7-3.6x; the second (tiles of 8-16 rows x 512, 4-8 warps) too, with
# ~0.7-0.9 TB/s in the stages: one program an SM keeps too few bytes in flight. This third one gives
# each program 8-16 warps and 1024-2048 columns a step. Every run
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
sweep 0.6b chain 150 --programs 132,264 --warps 8,16 --block-k 1024,2048 --block-n 8,16 --prefetch off
sweep 0.6b layer 120 --programs 132 --warps 8,16 --block-k 1024,2048 --block-n 8,16 --prefetch off
sweep 8b chain 200 --programs 132,264 --warps 8,16 --block-k 1024,2048 --block-n 8,16 --prefetch off
