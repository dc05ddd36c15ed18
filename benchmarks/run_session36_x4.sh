#!/usr/bin/env bash
# Thirty-sixth session (2026-11-29), nvidia-h200-x4: the 36-study Qwen3-0.6B decode table (40 configs a
# study, a fresh database and Triton cache a run) on 4, 1 and 2 GPUs of one host, after the JIT cache-key
# fix (kernel_space.jit_keys), 8 configs in flight a worker: issue 11's 4-GPU row on SQLite and on a
# PostgreSQL server started on the machine.
#   OUT=dir [RUNS=4:sqlite,1:sqlite,4:postgres,2:sqlite] [NAME=a] [LIMIT=s] bash benchmarks/run_session36_x4.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
OUT=$OUT RUNS=${RUNS:-4:sqlite,1:sqlite,4:postgres,2:sqlite} NAME=${NAME:-a} LIMIT=${LIMIT:-540} \
  bash benchmarks/run_session25_x4.sh
