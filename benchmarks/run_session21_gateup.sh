#!/usr/bin/env bash
# Twenty-first session (2026-11-28), nvidia-h100-x2: why the 2-GPU tables' rmsnorm_gate_up_silu rows are
# slower than the 1-GPU ones (three machines, the same M = 1 winner each time). Only that op's nine
# decode studies, 40 configs each, on 1 GPU and on 2, twice, each run's SQLite database kept in $OUT
# (every trial: its config, order and time) for the comparison on the development machine.
#   OUT=dir bash benchmarks/run_session21_gateup.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
nvidia-smi -L
python3 -c "import torch, triton, optuna, sqlalchemy, kernel_space, tuner.search, cli.app"
timeout 400 python3 benchmarks/distributed_bench.py --model qwen3-0.6b --buckets decode --trials 40 \
  --ops rmsnorm_gate_up_silu --runs 1:sqlite,2:sqlite,1:sqlite,2:sqlite --keep-db \
  --out "$OUT/gateup.json" | tee "$OUT/gateup.log" | python3 benchmarks/distributed_rows.py
n=0
for db in $(grep -o 'sqlite:///[^ ]*' "$OUT/gateup.log" | sed 's#sqlite:///##'); do
  cp "$db" "$OUT/gateup_run$n.db"; n=$((n + 1))
done
tar czf "$OUT/worker_logs_gateup.tgz" -C "$OUT" $(cd "$OUT" && ls -d worker_logs_gateup_*) && rm -rf "$OUT"/worker_logs_gateup_*
ls -la "$OUT"
