#!/usr/bin/env bash
# Thirty-fifth session (2026-11-29), nvidia-h200-x2: the 36-study Qwen3-0.6B decode table (40 configs a
# study, a fresh database and Triton cache a run) on 1 and 2 GPUs of one host, with 8 configs in flight a
# worker (the default, which also sizes its compile pool) and with 16 (`bN` run flag: tune --batch N).
# Each row keeps its studies' winner speedups over the unfused arm (timed in the same confirmation), so
# that the runs' searches compare on one host.
#   OUT=dir RUNS=1:sqlite:b16,2:sqlite:b16,2:sqlite NAME=a [LIMIT=s] bash benchmarks/run_session35_x2.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
OUT=$OUT RUNS=${RUNS:-1:sqlite:b16,2:sqlite:b16,2:sqlite} NAME=${NAME:-a} LIMIT=${LIMIT:-540} \
  bash benchmarks/run_session25_x4.sh
