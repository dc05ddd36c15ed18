#!/usr/bin/env bash
# Sixteenth session (2026-11-27), nvidia-h100-x1: the tables of this session's 1-, 2- and 4-GPU tunes
# on SQLite and PostgreSQL (results/session16_H100_2026-11-27/x4_a..c, one machine) benched side by side
# in one process (benchmarks/tables_ab.py); the one-GPU table twice, for the noise of one table.
#   OUT=dir bash benchmarks/run_session16_tables.sh
. benchmarks/_session.sh
S=$R/session16_H100_2026-11-27
tables_ab 280 "$OUT/tables_ab_session16_H100_2026-11-27.json" \
  "1gpu_sqlite=$S/x4_b/dispatch_qwen3-0.6b_1gpu_sqlite.json" "1gpu_sqlite_again=$S/x4_b/dispatch_qwen3-0.6b_1gpu_sqlite.json" \
  "2gpu_sqlite=$S/x4_c/dispatch_qwen3-0.6b_2gpu_sqlite.json" "2gpu_postgres=$S/x4_b/dispatch_qwen3-0.6b_2gpu_postgres.json" \
  "4gpu_sqlite=$S/x4_c/dispatch_qwen3-0.6b_4gpu_sqlite.json" "4gpu_postgres=$S/x4_b/dispatch_qwen3-0.6b_4gpu_postgres.json" \
  "4gpu_postgres_pinned=$S/x4_a/dispatch_qwen3-0.6b_4gpu_postgres_pinned.json"
