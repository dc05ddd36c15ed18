#!/usr/bin/env bash
# Twenty-eighth session (2026-11-29), one H200: the FMA path's stage counts offered once (this tree)
# against every stage count offered (_ab/: the commit before, run flag "before"), Qwen3-0.6B's M = 1
# studies of the five GEMM sites (the only bucket where the space offers the FMA path), 40 configs a
# study, before / after / before / after, each a fresh SQLite database and Triton cache; each run's table
# exported for its winners.
#   OUT=dir bash benchmarks/run_session28_fma.sh      (with _ab/ holding the earlier tree)
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
[ -f _ab/cli/app.py ] || { echo "no earlier tree in _ab/"; exit 1; }
nvidia-smi -L
python3 -c "import torch, triton, optuna, sqlalchemy, kernel_space, tuner.search, cli.app"
timeout "${LIMIT:-420}" python3 benchmarks/distributed_bench.py --model qwen3-0.6b --buckets 1 --trials 40 \
  --ops rmsnorm_qkv,o_proj_residual,rmsnorm_gate_up_silu,down_residual,lm_head \
  --runs 1:sqlite:before,1:sqlite,1:sqlite:before,1:sqlite --out "$OUT/distributed_fma.json" --export-dir "$OUT" \
  | python3 benchmarks/distributed_rows.py
tar czf "$OUT/worker_logs_fma.tgz" -C "$OUT" $(cd "$OUT" && ls -d worker_logs_* 2>/dev/null | grep -v '\.tgz$') \
  && rm -rf "$OUT"/worker_logs_distributed_*
