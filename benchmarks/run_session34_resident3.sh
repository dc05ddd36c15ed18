#!/usr/bin/env bash
# Thirty-fourth session, third call: resident_probe.py with the preload as a mask a stage (1 qkv, 2 o_proj,
# 4 gate, 8 up, 16 down): the 0.6B GEMV chain and whole layers (context 256) at 16 warps.
#   OUT=dir bash benchmarks/run_session34_resident3.sh
source benchmarks/_session.sh
T=$R/dispatch_qwen3-0.6b_H100.json
timeout 60 python3 benchmarks/resident_probe.py "$OUT/smoke.json" --smoke 2>&1 | quiet | tail -3
timeout 60 python3 benchmarks/resident_probe.py "$OUT/smoke.json" --smoke --layer 2>&1 | quiet | tail -3
timeout 200 python3 benchmarks/resident_probe.py "$OUT/resident_chain_masks.json" --table "$T" --warps 16 \
  --preload 0,1,2,16,19,3,31 2>&1 | quiet | grep -v "capture compiles\|untuned" | cut -c1-200
timeout 200 python3 benchmarks/resident_probe.py "$OUT/resident_layer_masks.json" --table "$T" --warps 16 --layer \
  --context 256 --preload 0,2,19,31 2>&1 | quiet | grep -v "capture compiles\|untuned" | cut -c1-200
