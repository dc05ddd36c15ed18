#!/usr/bin/env bash
# Sixteenth session (2026-11-27), nvidia-h100-x4: the 36-study Qwen3-0.6B decode table at 40 configs a
# study (as run_session15.sh), each worker of a 4-GPU tune on its own quarter of the host's cores
# (KERNEL_SEARCH_PIN_CPUS=1) or not, and PostgreSQL pinned; then one GPU for the same machine's ratio.
#   OUT=dir RUNS=4:sqlite,4:sqlite:pin,4:postgres:pin NAME=a [LIMIT=seconds] bash benchmarks/run_session16_pin.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
python3 -c "import os; print('cpus', len(os.sched_getaffinity(0)), os.cpu_count())"
python3 -c "from tuner.launch import cpu_shares; print([sorted(s) for s in cpu_shares(4) or []])"
nvidia-smi topo -m 2>/dev/null | head -8
python3 benchmarks/forkserver_probe.py || exit 1
OUT=$OUT RUNS=${RUNS:-4:sqlite,4:sqlite:pin} NAME=${NAME:-a} TRIALS=40 LIMIT=${LIMIT:-540} \
  bash benchmarks/run_distributed_x4.sh | python3 benchmarks/distributed_rows.py
