#!/usr/bin/env bash
# Thirty-fourth session, one H200: where 0.6B batch 32's decode step goes outside its attention (the 2k
# cell's attention streams at ~90% of the copy bandwidth, yet the step sits at 70% of its floor):
# step_timeline.py at batch 32 x 2k and x 256, and batch 1 x 256 beside them, with the committed table.
#   OUT=dir bash benchmarks/run_session34_timeline.sh
source benchmarks/_session.sh
timeout 300 python3 benchmarks/step_timeline.py "$OUT/timeline_b32.json" --model qwen3-0.6b \
  --table $R/dispatch_qwen3-0.6b_H100.json --cells 32x2048,32x256,1x256 2>&1 | quiet | grep -v "capture\|untuned" \
  | cut -c1-150
