#!/usr/bin/env bash
# Eleventh session (2026-11-27): what one launch reading decode attention's bytes can reach
# (stream_floor_probe.py), and the KV cache's layout (kv_layout_probe.py, prepared in the tenth session).
#   OUT=dir bash benchmarks/run_session11_probe.sh
. benchmarks/_session.sh
timeout 200 python3 benchmarks/stream_floor_probe.py "$OUT/stream_floor.json" 2>&1 | quiet | cut -c1-150
: timeout 200 python3 benchmarks/kv_layout_probe.py "$OUT/kv_layout.json" 2>&1 | quiet | cut -c1-150
