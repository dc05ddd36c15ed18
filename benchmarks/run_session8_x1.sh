#!/usr/bin/env bash
# Eighth session (2026-11-26), first nvidia-h100-x1 call.
# 1. What a tune's first study spends its extra seconds on: the 8 studies of buckets 1 and 2 on one GPU
#    (fresh database and Triton cache each run), with benchmarks/probe_site logging every C module
#    Triton builds and every kernel load, alternately without (KS_PROBE_OFF=1) and with the compile
#    pool building the launchers and Triton's driver started early.
# 2. run_session7_position.sh: does the 0.6B batch-8 x 256 cell depend on being a process's first cell.
#   OUT=dir bash benchmarks/run_session8_x1.sh
. benchmarks/_session.sh
python3 -c "import torch, triton, optuna, sqlalchemy, kernel_space, tuner.search, cli.app"
for i in 1 2 3 4; do
  off=$(( i % 2 )); tag=$([ $off = 1 ] && echo off || echo on)
  log="$OUT/probe_${i}_$tag.jsonl"
  KS_PROBE_LOG=$log KS_PROBE_OFF=$off PYTHONPATH=$PWD/benchmarks/probe_site:$PYTHONPATH timeout 150 \
    python3 benchmarks/distributed_bench.py --model qwen3-0.6b --buckets 1,2 --trials 16 \
    --ops rmsnorm_qkv,o_proj_residual,rmsnorm_gate_up_silu,down_residual --runs 1:sqlite \
    --out "$OUT/probe_dist_${i}_$tag.json" 2>&1 | tail -2
  python3 benchmarks/probe_summary.py "$log" "$OUT/probe_dist_${i}_$tag.json"
done
tar czf "$OUT/probe_worker_logs.tgz" -C "$OUT" $(cd "$OUT" && ls -d worker_logs_* 2>/dev/null) && rm -rf "$OUT"/worker_logs_*
BEFORE=$R/attention_s7_H100_2026-11-26/0_dispatch_qwen3-0.6b_H100_before.json
[ -f "$BEFORE" ] || BEFORE=$(ls $R/attention_s7_H100_2026-11-26/0_*.json | head -1)
BEFORE=$BEFORE bash benchmarks/run_session7_position.sh
