#!/usr/bin/env bash
# Twentieth session (2026-11-28), nvidia-h100-x4: the tuner's database work per config cut (lean tell,
# WAITING trials read only when unknown, seeds and replacements enqueued without reads, a walk's trial
# read once and its owner stored with its parameters) against the tree before it (_ab/, commit
# cbd8c49, run flag "before"), on one machine: the 36-study Qwen3-0.6B decode table on 4 GPUs, before
# then after; then rmsnorm_qkv's 9 studies alone on 1 GPU, before then after. 40 configs a study, a
# fresh SQLite database and Triton cache a run, the load average beside it.
#   OUT=dir bash benchmarks/run_session20_ab.sh      (with _ab/ holding the earlier tree, carried)
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
[ -f _ab/cli/app.py ] || { echo "no earlier tree in _ab/"; exit 1; }
python3 benchmarks/forkserver_probe.py || exit 1
(while sleep 2; do echo "$(date +%s) $(cut -d' ' -f1-4 /proc/loadavg)"; done) > "$OUT/loadavg_c.log" &
sampler=$!
OUT=$OUT RUNS=4:sqlite:before,4:sqlite NAME=c TRIALS=40 LIMIT=260 bash benchmarks/run_distributed_x4.sh \
  | python3 benchmarks/distributed_rows.py
OUT=$OUT RUNS=1:sqlite:before,1:sqlite NAME=d TRIALS=40 LIMIT=200 OPS=rmsnorm_qkv bash benchmarks/run_distributed_x4.sh \
  | python3 benchmarks/distributed_rows.py
kill $sampler
