#!/usr/bin/env bash
# Twenty-fifth session (2026-11-28), nvidia-h200-x4: the 36-study Qwen3-0.6B decode table (40 configs a
# study, a fresh database and Triton cache a run) on 4, 1 and 2 GPUs of one host on SQLite, then 4 GPUs on
# a PostgreSQL server started on the machine (issue 11's 1/2/4-GPU rows), each process traced. The
# exported tables and trace summaries are packed into one archive ($OUT brings back 8 files).
#   OUT=dir [RUNS=...] [NAME=a] [LIMIT=s] bash benchmarks/run_session25_x4.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
OUT=$OUT RUNS=${RUNS:-4:sqlite:trace,1:sqlite:trace,2:sqlite:trace,4:postgres} NAME=${NAME:-a} LIMIT=${LIMIT:-560} \
  bash benchmarks/run_session21_x2.sh > "$OUT/session_${NAME:-a}.log" 2>&1
grep -v -E "^(compile|child|fork server|worker +pid|tune +pid)" "$OUT/session_${NAME:-a}.log" | cut -c1-400 | tail -120
(cd "$OUT" && tar czf "tables_traces_${NAME:-a}.tgz" dispatch_*.json trace_*.txt 2>/dev/null && rm -f dispatch_*.json trace_*.txt)
ls "$OUT"
