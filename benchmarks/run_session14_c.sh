#!/usr/bin/env bash
# Fourteenth session, call c on the nvidia-h100-x4 of calls a and b: the scaling runs RUNS=4:postgres,1:sqlite
# (run_session14_scaling.sh, code of call b), then the decode step of Qwen3-0.6B with every table the
# three calls wrote, and unfused, side by side in one process (benchmarks/tables_ab.py, one GPU).
#   OUT=dir bash benchmarks/run_session14_c.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
OUT=$OUT RUNS=4:postgres,1:sqlite NAME=c LIMIT=${LIMIT:-400} bash benchmarks/run_session14_scaling.sh
S=benchmarks/results/session14_H100_2026-11-27
tables=()
for f in "$S"/scaling_a/dispatch_*.json "$S"/scaling_b/dispatch_*.json "$OUT"/dispatch_*.json; do
  [ -f "$f" ] || continue
  call=$(basename "$(dirname "$f")"); call=${call#scaling_}; [ "$(dirname "$f")" = "$OUT" ] && call=c
  name=$(basename "$f" .json); name=${name#dispatch_qwen3-0.6b_}
  tables+=(--table "${call}_${name}=$f")
done
timeout 185 python3 benchmarks/tables_ab.py --model qwen3-0.6b "${tables[@]}" --batches 1,8,32 \
  --out "$OUT/tables_ab_H100_2026-11-27.json" 2>&1 | grep -v "Warning\|warnings.warn\|capture compiles" | tail -8
