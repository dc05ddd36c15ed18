#!/usr/bin/env bash
# Thirtieth session (2026-11-29), one H200: where the fixed-point stream's time goes at 0.6B batch 8 (16%
# slower than the model dtype with the committed table): step_timeline.py with each stream.
#   OUT=dir bash benchmarks/run_session30_timeline.sh
source benchmarks/_session.sh
for s in model fixed; do
  KERNEL_SEARCH_STREAM=$s timeout 150 python3 benchmarks/step_timeline.py "$OUT/timeline_b8_$s.json" --model qwen3-0.6b \
    --table $R/dispatch_qwen3-0.6b_H100.json --cells 8x256,1x256 2>&1 | quiet | grep -v "capture\|untuned" | tail -24 | cut -c1-150
done
