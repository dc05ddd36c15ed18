#!/usr/bin/env bash
# Thirty-sixth session (2026-11-29), nvidia-h200-x4: where a worker's start-up goes (startup_probe.py: one
# process, then four at once, with and without PYTORCH_NVML_BASED_CUDA_CHECK), torch's own import
# profile, and the study loop's ask on SQLite against PostgreSQL (contention_probe.py).
#   OUT=dir bash benchmarks/run_session36_startup.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
python3 -c "import torch, triton, optuna, sqlalchemy, kernel_space, tuner.search, cli.app"  # warm the page cache
python3 benchmarks/startup_probe.py --procs 1,4 --rounds 2 > "$OUT/startup.json"
python3 -X importtime -c "import torch; torch.cuda.is_available()" 2> "$OUT/importtime_torch.txt"
sort -t'|' -k2 -n -r "$OUT/importtime_torch.txt" | head -25
timeout 200 python3 benchmarks/contention_probe.py --cases 1:shared,1:pg,4:shared,4:pg --out "$OUT/contention.jsonl" \
  2>&1 | tail -30
