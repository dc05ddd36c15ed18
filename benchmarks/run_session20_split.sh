#!/usr/bin/env bash
# Twentieth session (2026-11-28), nvidia-h100-x4: where a study's time goes with one worker and with
# four (the worker log's per-study split, tuner.search.SPENT_PARTS, summed per worker as
# study_spent_s), on the 36-study Qwen3-0.6B decode table at 40 configs a study, a fresh database and
# Triton cache a run; the host's load average sampled every 2 s beside it (loadavg.log), and the
# host's cores (lscpu). RUNS defaults to 1 GPU, 4 GPUs, and 4 GPUs with 6 configs in flight per worker
# (24 compile processes instead of 32).
#   OUT=dir [RUNS=...] [NAME=a] [LIMIT=s] bash benchmarks/run_session20_split.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
lscpu | grep -E "^(CPU\(s\)|Thread|Core|Socket|Model name)" | tee "$OUT/lscpu.txt"
python3 benchmarks/forkserver_probe.py || exit 1
(while sleep 2; do echo "$(date +%s) $(cut -d' ' -f1-4 /proc/loadavg)"; done) > "$OUT/loadavg_${NAME:-a}.log" &
sampler=$!
OUT=$OUT RUNS=${RUNS:-1:sqlite,4:sqlite,4:sqlite:b6} NAME=${NAME:-a} TRIALS=40 LIMIT=${LIMIT:-530} \
  bash benchmarks/run_distributed_x4.sh | python3 benchmarks/distributed_rows.py
kill $sampler
