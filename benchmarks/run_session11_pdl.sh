#!/usr/bin/env bash
# Eleventh session (2026-11-27): PDL off for some launch sites only (pdl_probe.py), 8B batch 32 x 256
# and batch 32 x 2k, the committed table.
#   OUT=dir bash benchmarks/run_session11_pdl.sh
. benchmarks/_session.sh
timeout 400 python3 benchmarks/pdl_probe.py "$OUT/pdl_probe_8b.json" --model qwen3-8b \
  --table $R/dispatch_qwen3-8b_H100.json --cells 32x256,32x2048 2>&1 | quiet | grep "tok/s\|Error\|error" | cut -c1-140
