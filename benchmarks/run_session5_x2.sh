#!/usr/bin/env bash
# Fifth session, nvidia-h100-x2: the 2-GPU PostgreSQL row of the distributed tune, then the end-to-end
# bench of the 1-GPU and 2-GPU tables of the same-machine SQLite runs (two rounds, alternating).
#   OUT=dir bash benchmarks/run_session5_x2.sh
set -u
OUT=${OUT:-benchmarks/results/new}
OUT=$OUT RUNS=2:postgres NAME=x2d bash benchmarks/run_distributed_x4.sh > "$OUT/run_x2d.log" 2>&1
tail -2 "$OUT/run_x2d.log" | cut -c1-400
D=benchmarks/results/distributed_tables_H100_2026-11-26
quiet() { grep -v "Warning\|_mismatch\|warnings.warn\|softmax"; }
for round in 1 2; do
  for n in 1gpu 2gpu; do
    timeout 60 python3 benchmarks/e2e_matrix.py --models qwen3-0.6b --batches 1,8 --contexts 256 --arms table \
      --repeats 5 --table "qwen3-0.6b=$D/dispatch_qwen3-0.6b_x2c_$n.json" --out "$OUT/e2e_x2c_${n}_$round.json" 2>&1 \
      | quiet | tail -4
  done
done
