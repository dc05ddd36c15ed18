#!/usr/bin/env bash
# Nineteenth session (2026-11-28), nvidia-h100-x4: the compile pool ahead of time (meta tensors,
# Triton's driver answering for the GPU, no CUDA context in any pool process) against the pool as
# before (KERNEL_SEARCH_POOL_CONTEXT=1, flag ctx), on the 36-study Qwen3-0.6B decode table at 40
# configs a study, a fresh database and Triton cache a run.
#   OUT=dir PART=1|2|3 bash benchmarks/run_session19_pool.sh
# PART 1 (call a): pool_ahead_check.py (does the GPU process find the pool's binaries?), then 4 GPUs
# ahead, 4 GPUs as before, 1 GPU ahead. PART 2 (call b, the same machine): the two 4-GPU runs in the
# other order, then 2 GPUs. PART 3 (call c, another machine): 1 GPU, 4 GPUs on PostgreSQL with pinned
# workers, 2 GPUs likewise (cut by the limit). Calls b and c ran run_distributed_x4.sh with these RUNS
# directly, without the preflight.
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
nvidia-smi -L
python3 benchmarks/forkserver_probe.py || exit 1
if [ "${PART:-1}" = 1 ]; then
  timeout 150 python3 benchmarks/pool_ahead_check.py "$OUT/pool_ahead_check.json" --configs 4 > "$OUT/check.log" 2>&1
  rc=$?
  grep -v "Warning\|warnings.warn" "$OUT/check.log" | tail -15
  [ $rc = 0 ] || { echo "pool_ahead_check rc=$rc: no A/B"; exit 1; }
  RUNS=4:sqlite,4:sqlite:ctx,1:sqlite NAME=a LIMIT=430
elif [ "$PART" = 2 ]; then
  RUNS=4:sqlite:ctx,4:sqlite,2:sqlite NAME=b LIMIT=400
else
  RUNS=1:sqlite,4:postgres:pin,2:postgres:pin NAME=c LIMIT=430
fi
OUT=$OUT RUNS=$RUNS NAME=$NAME TRIALS=40 LIMIT=$LIMIT bash benchmarks/run_distributed_x4.sh \
  | python3 benchmarks/distributed_rows.py
