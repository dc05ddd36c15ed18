#!/usr/bin/env bash
# Eleventh session (2026-11-27): a loop-free decode attention variant (attn_flat_probe.py).
#   OUT=dir bash benchmarks/run_session11_flat.sh
. benchmarks/_session.sh
timeout 400 python3 benchmarks/attn_flat_probe.py "$OUT/attn_flat.json" 2>&1 | quiet | cut -c1-150
