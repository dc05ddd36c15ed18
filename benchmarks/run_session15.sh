#!/usr/bin/env bash
# Fifteenth session (2026-11-27), nvidia-h100-x4: the 36-study Qwen3-0.6B decode table at tune's
# default of 40 configs a study, as in run_session14_scaling.sh, with the code of this session (the
# split-K reducer of a large tile no longer unrolled over every split; the benchmarking child timing
# the next config while the tuner stores the last; start-up steps in the worker logs).
#   OUT=dir RUNS=4:sqlite,2:sqlite NAME=a [LIMIT=seconds] [PROFILE=1] bash benchmarks/run_session15.sh
# Calls: a (code f43bc03: the reducer change and the new log lines), RUNS=4:sqlite,2:sqlite PROFILE=1;
# b (code 01defdd: the fork server and start-up order), RUNS=1:sqlite,4:sqlite; c (the fork server also
# builds Triton's CUDA helper once), RUNS=4:sqlite,2:sqlite,1:sqlite LIMIT=540.
# PROFILE=1 then samples every process of a short 4-GPU tune (8 studies) with py-spy, for where the
# start-up and each config's time go (py-spy's wheel travels in .whl).
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
# Preflight (a few seconds): a process forked from the preloaded fork server opens CUDA.
python3 benchmarks/forkserver_probe.py || exit 1
OUT=$OUT RUNS=${RUNS:-4:sqlite,2:sqlite} NAME=${NAME:-a} TRIALS=40 LIMIT=${LIMIT:-450} \
  bash benchmarks/run_distributed_x4.sh | python3 benchmarks/distributed_rows.py
if [ "${PROFILE:-0}" = 1 ]; then
  SPY=$(python3 -c "import sys; print(next(p for p in sys.path if p.endswith('site')))" 2>/dev/null)/bin/py-spy
  [ -x "$SPY" ] || SPY=$(command -v py-spy)
  db=$(mktemp -d)/tune.db
  logs="$OUT/profile_logs"
  TRITON_CACHE_DIR=$(mktemp -d) timeout 150 "$SPY" record --subprocesses --nonblocking --rate 50 --format raw \
    -o "$OUT/profile_4gpu.txt" -- python3 -m cli.app tune --model qwen3-0.6b --buckets 1,2 --trials 40 \
    --gpus 0,1,2,3 --db "sqlite:///$db" --no-bench --worker-logs "$logs" \
    --op rmsnorm_qkv --op o_proj_residual --op rmsnorm_gate_up_silu --op down_residual > "$OUT/profile_tune.txt" 2>&1
  echo "py-spy rc=$?"; tail -3 "$OUT/profile_tune.txt"
  tail -n 4 "$logs"/worker-gpu0.log | cut -c1-400
  gzip -f "$OUT/profile_4gpu.txt" 2>/dev/null; tar czf "$OUT/profile_logs.tgz" -C "$OUT" profile_logs && rm -rf "$logs"
  ls -la "$OUT"
fi
