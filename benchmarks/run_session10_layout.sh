#!/usr/bin/env bash
# Tenth session (2026-11-27): decode attention's plan over the runtime's slot-major KV cache and over a
# head-major one (kv_layout_probe.py), batch 1 and 8 x 8k and 32k, 0.6B and 8B head shapes.
#   OUT=dir bash benchmarks/run_session10_layout.sh
. benchmarks/_session.sh
timeout 200 python3 benchmarks/kv_layout_probe.py "$OUT/kv_layout.json" 2>&1 | quiet | cut -c1-150
