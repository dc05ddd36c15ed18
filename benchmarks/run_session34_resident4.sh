#!/usr/bin/env bash
# Thirty-fourth session, fourth call: resident_probe.py with the residual rows loaded with the stage's tile
# (before the wait where the stage is preloaded) and the norm gain issued before the row.
#   OUT=dir bash benchmarks/run_session34_resident4.sh
source benchmarks/_session.sh
T=$R/dispatch_qwen3-0.6b_H100.json
timeout 60 python3 benchmarks/resident_probe.py "$OUT/smoke.json" --smoke 2>&1 | quiet | tail -3
timeout 60 python3 benchmarks/resident_probe.py "$OUT/smoke.json" --smoke --layer 2>&1 | quiet | tail -3
timeout 200 python3 benchmarks/resident_probe.py "$OUT/resident_chain_res.json" --table "$T" --warps 16 \
  --preload 0,19,23 2>&1 | quiet | grep -v "capture compiles\|untuned" | cut -c1-200
timeout 200 python3 benchmarks/resident_probe.py "$OUT/resident_layer_res.json" --table "$T" --warps 16 --layer \
  --context 256 --preload 0,19 2>&1 | quiet | grep -v "capture compiles\|untuned" | cut -c1-200
