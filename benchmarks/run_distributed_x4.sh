#!/usr/bin/env bash
# The distributed-tune rows of benchmarks/results/distributed_<GPU>_<date>.json on one 4-GPU host:
# the 36-study Qwen3-0.6B decode table (4 GEMM ops x 9 buckets, $TRIALS configs a study, 16 unless set) on $RUNS
# (GPUS:STORAGE, in order; each a fresh database and a fresh Triton cache), each run's table
# exported to $OUT for an end-to-end bench, and the worker logs packed into one archive.
#   OUT=dir RUNS=1:sqlite,4:sqlite NAME=a [TRIALS=n] [LIMIT=seconds] [OPS=op,op] bash benchmarks/run_distributed_x4.sh
# LIMIT cuts the runs short (the rows already finished are written) so that the logs are still packed.
set -u
OUT=${OUT:-benchmarks/results/new}
RUNS=${RUNS:-1:sqlite,4:sqlite}
mkdir -p "$OUT"
nvidia-smi -L
# Read the imports from disk once, so that the first run does not pay for a cold page cache.
python3 -c "import torch, triton, optuna, sqlalchemy, kernel_space, tuner.search, cli.app"
timeout "${LIMIT:-100000}" python3 benchmarks/distributed_bench.py --model qwen3-0.6b --buckets decode --trials "${TRIALS:-16}" \
  --ops "${OPS:-rmsnorm_qkv,o_proj_residual,rmsnorm_gate_up_silu,down_residual}" --runs "$RUNS" \
  --out "$OUT/distributed_${NAME:-a}.json" --export-dir "$OUT"
# A traced run's timeline (run flag `trace`), summed up beside the archive.
for d in "$OUT"/worker_logs_*/trace; do
  [ -d "$d" ] && python3 benchmarks/trace_summary.py "$d" > "$OUT/trace_$(basename "$(dirname "$d")").txt"
done
# Each run's worker logs (timestamped phases: cli/worker.py) in one archive: $OUT brings back 8 files.
tar czf "$OUT/worker_logs_${NAME:-a}.tgz" -C "$OUT" $(cd "$OUT" && ls -d worker_logs_* 2>/dev/null | grep -v '\.tgz$') \
  && rm -rf "$OUT"/worker_logs_distributed_*
