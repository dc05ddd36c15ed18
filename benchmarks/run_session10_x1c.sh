#!/usr/bin/env bash
# Tenth session (2026-11-27): BLOCK_M = 64 (Hopper's wgmma) at Qwen3-8B M 8, 16, 32, beside the
# committed, neighbour and sampled configs (gemm_probe.py --wide-m), PDL off, cuBLAS alone.
#   OUT=dir bash benchmarks/run_session10_x1c.sh
. benchmarks/_session.sh
KERNEL_SEARCH_PDL=0 timeout 560 python3 benchmarks/gemm_probe.py --models qwen3-8b --ms 8,16,32 --samples 24 --wide-m \
  --table qwen3-8b=$R/dispatch_qwen3-8b_H100.json --out "$OUT" 2>&1 | quiet | cut -c1-270
