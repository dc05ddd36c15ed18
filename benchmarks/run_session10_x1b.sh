#!/usr/bin/env bash
# Tenth session (2026-11-27): is there a better 8B GEMM config than the table's? gemm_probe.py at
# M 1, 8, 16, 32 of the four sites: the committed config, the other buckets' configs (with GROUP_M 8
# where BLOCK_M < M) and 30 sampled ones, PDL off (each op without its overlap with itself), cuBLAS alone.
#   OUT=dir bash benchmarks/run_session10_x1b.sh
. benchmarks/_session.sh
KERNEL_SEARCH_PDL=0 timeout 560 python3 benchmarks/gemm_probe.py --models qwen3-8b --ms 1,8,16,32 --samples 30 \
  --table qwen3-8b=$R/dispatch_qwen3-8b_H100.json --out "$OUT" 2>&1 | quiet | cut -c1-250
