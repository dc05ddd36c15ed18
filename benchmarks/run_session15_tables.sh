#!/usr/bin/env bash
# Fifteenth session (2026-11-27), not run then (its one try found no machine, and the device time then went
# to run_session15_start_ab.sh); run in the sixteenth session: the tables of calls 1-3
# (benchmarks/results/session15_H100_2026-11-27/call1..3) benched side by side in one process
# (benchmarks/tables_ab.py), the one-GPU table of call c twice as two arms: the spread of one table
# against itself is the noise the others are read against.
#   OUT=dir bash benchmarks/run_session15_tables.sh
. benchmarks/_session.sh
S=$R/session15_H100_2026-11-27
tables_ab 260 "$OUT/tables_ab_H100_2026-11-27.json" \
  "c_1gpu=$S/call3/dispatch_qwen3-0.6b_1gpu_sqlite.json" "c_1gpu_again=$S/call3/dispatch_qwen3-0.6b_1gpu_sqlite.json" \
  "c_2gpu=$S/call3/dispatch_qwen3-0.6b_2gpu_sqlite.json" "c_4gpu=$S/call3/dispatch_qwen3-0.6b_4gpu_sqlite.json" \
  "b_1gpu=$S/call2/dispatch_qwen3-0.6b_1gpu_sqlite.json" "b_4gpu=$S/call2/dispatch_qwen3-0.6b_4gpu_sqlite.json" \
  "a_2gpu=$S/call1/dispatch_qwen3-0.6b_2gpu_sqlite.json" "a_4gpu=$S/call1/dispatch_qwen3-0.6b_4gpu_sqlite.json"
