#!/usr/bin/env bash
# Thirty-fifth session (2026-11-29), one H200: on the x2 machine one worker's benchmarking child in each
# run answered 5-8 s a study against ~1 s for the other's, and in each run the slow one had started with
# rmsnorm_qkv. Two traced one-GPU tunes of the same six studies (0.6B, M = 1, 2, 4), one starting with
# rmsnorm_qkv and one with o_proj_residual, each a fresh database and Triton cache; then where each
# child's seconds went (benchmarks/child_timeline.py).
#   OUT=dir [FIRST_ONLY=1] bash benchmarks/run_session35_child.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
orders=("rmsnorm_qkv o_proj_residual" "o_proj_residual rmsnorm_qkv")
[ "${FIRST_ONLY:-0}" = 1 ] && orders=("rmsnorm_qkv o_proj_residual")  # the order that showed it
for order in "${orders[@]}"; do
  name=$(echo "$order" | cut -d' ' -f1)
  db=$(mktemp -d)/tune.db
  ops=""; for op in $order; do ops="$ops --op $op"; done
  start=$(date +%s.%N)
  KERNEL_SEARCH_TRACE="$OUT/trace_$name" TRITON_CACHE_DIR=$(mktemp -d) \
    timeout 200 python3 -m cli.app tune --model qwen3-0.6b $ops --buckets 1,2,4 --trials 40 --gpus 0 \
    --db "sqlite:///$db" --no-bench --worker-logs "$OUT/logs_$name" > "$OUT/tune_$name.log" 2>&1
  echo "== first op $name: rc $? wall $(python3 -c "import time; print(round(time.time() - $start, 1))") s"
  grep "trials; s:" "$OUT/logs_$name"/worker-gpu0.log | cut -c25-300
  python3 benchmarks/child_timeline.py "$OUT/trace_$name"
done
tar czf "$OUT/traces.tgz" -C "$OUT" $(cd "$OUT" && ls -d trace_* logs_*) && rm -rf "$OUT"/trace_* "$OUT"/logs_*
