#!/usr/bin/env bash
# Seventh session, nvidia-h100-x4: the distributed-tune rows 1 GPU SQLite, 4 GPUs PostgreSQL and 4 GPUs
# SQLite on one machine (run_distributed_x4.sh), cut at LIMIT seconds so that the rows already
# written and the worker logs still come back.
#   OUT=dir LIMIT=560 bash benchmarks/run_session7_x4.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
OUT=$OUT RUNS=${RUNS:-1:sqlite,4:postgres,4:sqlite} NAME=${NAME:-x4s7} LIMIT=${LIMIT:-560} \
  bash benchmarks/run_distributed_x4.sh > "$OUT/run_${NAME:-x4s7}.log" 2>&1
tail -3 "$OUT/run_${NAME:-x4s7}.log" | cut -c1-600
