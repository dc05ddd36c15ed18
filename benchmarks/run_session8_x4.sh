#!/usr/bin/env bash
# Eighth session (2026-11-26), the nvidia-h100-x4 call: the 36-study Qwen3-0.6B decode table on 1 GPU
# (SQLite), 4 GPUs and 2 GPUs (PostgreSQL) of one host, in that order, each a fresh database and Triton
# cache, with this session's start-up changes (compile pool of one batch, warmed by a first compile, and
# building the launchers; workers that end without teardown). The 2-GPU run is last: if the 10-minute
# limit cuts it, the other two rows are written.
#   OUT=dir bash benchmarks/run_session8_x4.sh
set -u
OUT=${OUT:-benchmarks/results/new}
OUT=$OUT RUNS=1:sqlite,4:postgres,2:postgres NAME=x4s8 LIMIT=${LIMIT:-575} bash benchmarks/run_distributed_x4.sh \
  | python3 benchmarks/distributed_rows.py --studies 5
