#!/usr/bin/env bash
# Twenty-fifth session (2026-11-28), second nvidia-h200-x4 call: where the four-worker tune's per-study
# CPU time goes (benchmarks/contention_probe.py: the study loop with a fake child, 1 and 4 processes on
# one SQLite file, a file each, with 32 spinning processes, on PostgreSQL; SQLite's own busy wait, then
# KERNEL_SEARCH_SQLITE_WAIT=poll), then the 36-study 0.6B decode table on 4 and 1 GPUs (SQLite) and 4 GPUs
# on PostgreSQL with this tree (TPE's constant-liar attribute written with the walk's parameters).
# Its one call ran past the 600-s limit in the probe, which then used the real compile pool (it has
# instant compiles since), and returned nothing: a 45-s retry of one probe study printed nothing either
# (hung or very slow; not looked into). The rows in x4_b/ came from a second, shorter command.
#   OUT=dir bash benchmarks/run_session25_x4b.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
python3 benchmarks/contention_probe.py --cases 1:shared,4:shared,4:own,4:shared:burn32,1:pg,1:pg,4:pg \
  --out "$OUT/contention_busy.jsonl" 2>&1 | grep -v Warning | cut -c1-260
KERNEL_SEARCH_SQLITE_WAIT=poll python3 benchmarks/contention_probe.py --cases 1:shared,4:shared,4:shared:burn32 \
  --out "$OUT/contention_poll.jsonl" 2>&1 | grep -v Warning | cut -c1-260
OUT=$OUT RUNS=4:sqlite:trace,1:sqlite:trace,4:postgres NAME=b LIMIT=${LIMIT:-400} bash benchmarks/run_session25_x4.sh
