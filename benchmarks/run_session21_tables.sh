#!/usr/bin/env bash
# Twenty-first session (2026-11-28), one H200: are the tables that 1 GPU and 2 GPUs tuned (call c of
# run_session21_x2.sh, one machine) as good as each other end to end? Qwen3-0.6B, batch 1 and 8,
# context 256, the table arm only (e2e_matrix.py), median of 5, two rounds alternating the tables.
#   OUT=dir bash benchmarks/run_session21_tables.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
T=benchmarks/results/session21_H200_2026-11-28/x2_c
for round in 1 2; do
  for gpus in 1gpu 2gpu; do
    python3 benchmarks/e2e_matrix.py --models qwen3-0.6b --batches 1,8 --contexts 256 --arms table --repeats 5 \
      --table "qwen3-0.6b=$T/dispatch_qwen3-0.6b_${gpus}_sqlite.json" --out "$OUT/tables_${gpus}_r${round}.json" \
      --fresh 2>&1 | grep -v "^  " | tail -4
  done
done
