#!/usr/bin/env bash
# Thirty-fourth session (2026-11-29), one H200: issue 10's one launch a step again, with each program's
# next-stage weights in its registers across a one-hop barrier (resident_probe.py): smoke checks first
# (a barrier that never opens would hang), then the 0.6B GEMV chain and whole layers against today's
# launches (the committed 0.6B table's M = 1 configs).
#   OUT=dir bash benchmarks/run_session34_resident.sh
# As run: the loop's offsets opaque (the default then) and --preload on/off (all tiles or none).
source benchmarks/_session.sh
T=$R/dispatch_qwen3-0.6b_H100.json
timeout 90 python3 benchmarks/resident_probe.py "$OUT/smoke.json" --smoke 2>&1 | quiet | tail -3 || exit 1
timeout 90 python3 benchmarks/resident_probe.py "$OUT/smoke.json" --smoke --layer 2>&1 | quiet | tail -3 || exit 1
timeout 200 python3 benchmarks/resident_probe.py "$OUT/resident_chain.json" --table "$T" --warps 8,16 2>&1 \
  | quiet | grep -v "capture compiles\|untuned" | cut -c1-200
timeout 200 python3 benchmarks/resident_probe.py "$OUT/resident_layer.json" --table "$T" --layer --context 256 \
  --warps 8,16 2>&1 | quiet | grep -v "capture compiles\|untuned" | cut -c1-200
