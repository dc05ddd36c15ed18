#!/usr/bin/env bash
# Thirty-fifth session (2026-11-29), nvidia-h200-x2, after kernel_space.jit_keys: the traced one-GPU
# tune that showed the benchmarking child compiling again (run_session35_child.sh, rmsnorm_qkv first),
# then the 36-study Qwen3-0.6B decode table (40 configs a study) on 1 and 2 GPUs of this host on SQLite
# and on 2 GPUs on PostgreSQL, a fresh database and Triton cache a run (run_session35_x2.sh).
#   OUT=dir [RUNS=...] [LIMIT=s] bash benchmarks/run_session35_x2b.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT/child"
OUT=$OUT/child FIRST_ONLY=1 bash benchmarks/run_session35_child.sh 2>&1 | cut -c1-400
OUT=$OUT RUNS=${RUNS:-1:sqlite,2:sqlite,2:postgres} NAME=b LIMIT=${LIMIT:-440} bash benchmarks/run_session35_x2.sh
