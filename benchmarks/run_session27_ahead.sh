#!/usr/bin/env bash
# Twenty-seventh session (2026-11-28), one H200, run from branch session27-space-ahead (not in main): a
# worker building its next study's space in a thread while the current study runs
# (tuner.space.build_ahead) against the tree before it (_ab/, the commit before, run flag "before"):
# rmsnorm_qkv's 9 decode studies (the largest spaces) on 1 GPU, 40 configs a study, before / after /
# before / after, each run a fresh SQLite database and Triton cache.
#   OUT=dir bash benchmarks/run_session27_ahead.sh      (with _ab/ holding the earlier tree)
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
[ -f _ab/cli/app.py ] || { echo "no earlier tree in _ab/"; exit 1; }
OUT=$OUT RUNS=1:sqlite:before,1:sqlite,1:sqlite:before,1:sqlite NAME=ahead TRIALS=40 LIMIT=${LIMIT:-420} \
  OPS=rmsnorm_qkv bash benchmarks/run_distributed_x4.sh | python3 benchmarks/distributed_rows.py
