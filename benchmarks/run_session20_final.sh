#!/usr/bin/env bash
# Twentieth session (2026-11-28), nvidia-h100-x4, the last call: the session's final tuner (less
# database work per config, and the next config asked while the worker waits) against the tree before
# the session (_ab/, commit cbd8c49, run flag "before") on the 36-study Qwen3-0.6B decode table on 4
# GPUs, final first; then rmsnorm_qkv's 9 studies on 1 GPU with the final tuner (call c measured the
# same on another machine: 57.9 s before, 59.2 s with the database change alone). 40 configs a study,
# a fresh SQLite database and Triton cache a run, the load average beside it.
#   OUT=dir bash benchmarks/run_session20_final.sh      (with _ab/ holding the earlier tree, carried)
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
[ -f _ab/cli/app.py ] || { echo "no earlier tree in _ab/"; exit 1; }
(while sleep 2; do echo "$(date +%s) $(cut -d' ' -f1-4 /proc/loadavg)"; done) > "$OUT/loadavg_e.log" &
sampler=$!
OUT=$OUT RUNS=4:sqlite,4:sqlite:before NAME=e TRIALS=40 LIMIT=170 bash benchmarks/run_distributed_x4.sh \
  | python3 benchmarks/distributed_rows.py
OUT=$OUT RUNS=1:sqlite NAME=f TRIALS=40 LIMIT=75 OPS=rmsnorm_qkv bash benchmarks/run_distributed_x4.sh \
  | python3 benchmarks/distributed_rows.py
kill $sampler
