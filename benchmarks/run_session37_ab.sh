#!/usr/bin/env bash
# Thirty-seventh session (2026-11-29), nvidia-h200-x2: the tuner's read of a study's trials for Optuna's
# cache, the Core read (storage.optuna_rows.read_trials) against Optuna's ORM read (run flag `orm`,
# KERNEL_SEARCH_ORM_TRIALS=1), on the 36-study Qwen3-0.6B decode table (40 configs a study, a fresh
# database and Triton cache a run), 2 GPUs on SQLite and on a PostgreSQL server started on the machine.
# A small tune first (WARM), so that no measured run reads from a cold disk.
#   OUT=dir [RUNS=2:sqlite,2:sqlite:orm,2:postgres:orm,2:postgres] [NAME=a] [LIMIT=s] bash benchmarks/run_session37_ab.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
WARM=1 OUT=$OUT RUNS=${RUNS:-2:sqlite,2:sqlite:orm,2:postgres:orm,2:postgres} NAME=${NAME:-a} LIMIT=${LIMIT:-530} \
  bash benchmarks/run_session36_x4.sh
