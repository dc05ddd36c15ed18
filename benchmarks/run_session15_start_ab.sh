#!/usr/bin/env bash
# Fifteenth session (2026-11-27), call 4 (results: session15_H100_2026-11-27/call4_start_ab): on one
# H100 x4 host, the same 4-GPU tune three times, its processes forked from the preloaded fork server
# (the default) or spawned (KERNEL_SEARCH_START_METHOD=spawn), in the order fork, spawn, fork: does
# the fork server change start-up or the cost of a config with four workers? 16 studies (the four
# GEMM ops at M = 1, 2, 4, 8), 40 configs a study, a fresh database and Triton cache a run.
#   OUT=dir bash benchmarks/run_session15_start_ab.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
python3 benchmarks/forkserver_probe.py || exit 1
python3 -c "import torch, triton, optuna, sqlalchemy, kernel_space, tuner.search, cli.app"
i=0
for method in forkserver spawn forkserver; do
  i=$((i + 1))
  KERNEL_SEARCH_START_METHOD=$method timeout 150 python3 benchmarks/distributed_bench.py --model qwen3-0.6b \
    --buckets 1,2,4,8 --trials 40 --ops rmsnorm_qkv,o_proj_residual,rmsnorm_gate_up_silu,down_residual \
    --runs 4:sqlite --out "$OUT/start_ab_${i}_${method}.json" | python3 benchmarks/distributed_rows.py | sed "s/^/$method: /"
done
tar czf "$OUT/start_ab_logs.tgz" -C "$OUT" $(cd "$OUT" && ls -d worker_logs_* 2>/dev/null) && rm -rf "$OUT"/worker_logs_*
