#!/usr/bin/env bash
# Eleventh session (2026-11-27): decode attention with SPLITS past 64 (attn_split_probe.py).
#   OUT=dir bash benchmarks/run_session11_split.sh
. benchmarks/_session.sh
timeout 540 python3 benchmarks/attn_split_probe.py "$OUT/attn_split.json" 2>&1 | quiet | cut -c1-150
