#!/usr/bin/env bash
# Thirty-sixth session (2026-11-29), nvidia-h200-x4: the 36-study Qwen3-0.6B decode table (40 configs a
# study, a fresh database and Triton cache a run) on 4, 1 and 2 GPUs of one host, after the JIT cache-key
# fix (kernel_space.jit_keys), 8 configs in flight a worker: issue 11's 4-GPU row on SQLite and on a
# PostgreSQL server started on the machine.
#   OUT=dir [RUNS=4:sqlite,1:sqlite,4:postgres,2:sqlite] [NAME=a] [LIMIT=s] [WARM=1] bash benchmarks/run_session36_x4.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
if [ "${WARM:-0}" = 1 ]; then
  # A fresh machine's first tune read Triton's, CUDA's and the compiler's files from a cold disk (call b's
  # first 4-GPU run: 70.7 s against 58.6 for the same run later): one small tune first, on GPU 0, into a
  # throwaway database and Triton cache, so that every measured run finds the same warm page cache.
  warm=$(mktemp -d)
  t0=$(date +%s.%N)
  TRITON_CACHE_DIR=$warm/triton CUDA_VISIBLE_DEVICES=0 python3 -m cli.app tune --model qwen3-0.6b --op o_proj_residual \
    --buckets 1,8 --trials 16 --no-bench --db "sqlite:///$warm/warm.db" > "$OUT/warm_${NAME:-a}.log" 2>&1
  echo "warm-up tune: rc $? in $(python3 -c "import time; print(round(time.time() - $t0, 1))") s"
  rm -rf "$warm"
fi
OUT=$OUT RUNS=${RUNS:-4:sqlite,1:sqlite,4:postgres,2:sqlite} NAME=${NAME:-a} LIMIT=${LIMIT:-540} \
  bash benchmarks/run_session25_x4.sh
