#!/usr/bin/env bash
# Twenty-sixth session (2026-11-28), nvidia-h200-x4: the 36-study Qwen3-0.6B decode table (40 configs a
# study, a fresh database and Triton cache a run) on 4 and 1 GPUs of one host on SQLite (traced), on 4
# GPUs on a PostgreSQL server started on the machine, and on 4 GPUs on SQLite again, with the tuner's
# writes to Optuna's tables and its own per-config rows as short Core transactions (storage.optuna_rows).
# Then, if time is left, the study loop alone (benchmarks/contention_probe.py: a fake child and instant
# compiles) with 1 process, 4 with a SQLite file each and 4 on one file.
#   OUT=dir [RUNS=...] [LIMIT=s] bash benchmarks/run_session26_x4.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
OUT=$OUT RUNS=${RUNS:-4:sqlite:trace,1:sqlite:trace,4:postgres,4:sqlite} NAME=s26a LIMIT=${LIMIT:-480} \
  bash benchmarks/run_session25_x4.sh
# The probe writes each case's rows as they come (--out is written at the end: the log keeps them).
timeout "${PROBE_LIMIT:-70}" python3 benchmarks/contention_probe.py --cases 1:shared,4:own,4:shared --ms 1,8,64 \
  > "$OUT/contention_s26a.jsonl" 2>&1
tail -n 12 "$OUT/contention_s26a.jsonl" | cut -c1-300
