#!/usr/bin/env bash
# Twenty-first session (2026-11-28), nvidia-h100-x2: the 36-study Qwen3-0.6B decode table (40 configs a
# study, a fresh SQLite database and Triton cache a run) on 2 GPUs and on 1, on one machine, with every
# process's timeline traced (tuner.trace; run flag `trace`): where the fixed seconds before a worker's
# first fused result go. The host's load average beside it.
#   OUT=dir [RUNS=2:sqlite:trace,1:sqlite:trace] [NAME=a] [LIMIT=s] bash benchmarks/run_session21_x2.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
lscpu | grep -E "^(CPU\(s\)|Thread|Core|Socket|Model name)" | tee "$OUT/lscpu.txt"
(while sleep 2; do echo "$(date +%s) $(cut -d' ' -f1-4 /proc/loadavg)"; done) > "$OUT/loadavg_${NAME:-a}.log" &
sampler=$!
OUT=$OUT RUNS=${RUNS:-2:sqlite:trace,1:sqlite:trace} NAME=${NAME:-a} TRIALS=40 LIMIT=${LIMIT:-530} \
  bash benchmarks/run_distributed_x4.sh | python3 benchmarks/distributed_rows.py
kill $sampler
for f in "$OUT"/trace_*.txt; do echo "== $f"; cat "$f"; done
