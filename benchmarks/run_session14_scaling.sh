#!/usr/bin/env bash
# Fourteenth session (2026-11-27), nvidia-h100-x4: the whole Qwen3-0.6B decode table (36 studies: 4 GEMM
# ops x 9 buckets) at tune's default of 40 configs a study, with the rolling ask of the thirteenth
# session, on $RUNS (GPUS:STORAGE; each a fresh database and a fresh Triton cache), each run's table
# exported beside its row for an end-to-end bench. The earlier rows of distributed_H100_2026-11-26.json
# ran 16 configs a study: there the ~15 s before a worker's first result was a large share of a
# 4-GPU run.
#   OUT=dir RUNS=4:sqlite,1:sqlite NAME=a [LIMIT=seconds] bash benchmarks/run_session14_scaling.sh
# Calls (results in benchmarks/results/session14_H100_2026-11-27/scaling_NAME/):
#   a: code 4aa4bb4 (before), RUNS=4:sqlite,1:sqlite;
#   b: code 3981a53 (Optuna's reads DEFERRED, synchronous=NORMAL, a walk's parameters in one
#      transaction, a study's last slow compile given up), RUNS=4:sqlite,2:sqlite;
#   c: the same code as b, RUNS=4:postgres,1:sqlite (run_session14_c.sh, which then benches the tables);
#      its LIMIT of 400 s cut the 1:sqlite run;
#   d: the same code, RUNS=1:sqlite NAME=d LIMIT=305 (the session's last device seconds): cut at 34 of 36
#      studies; only its worker logs came back (scaling_d_worker_logs.tgz).
set -u
OUT=${OUT:-benchmarks/results/new}
OUT=$OUT RUNS=${RUNS:-4:sqlite,1:sqlite} NAME=${NAME:-a} TRIALS=40 LIMIT=${LIMIT:-580} \
  bash benchmarks/run_distributed_x4.sh | python3 benchmarks/distributed_rows.py
