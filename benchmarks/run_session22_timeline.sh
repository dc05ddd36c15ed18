#!/usr/bin/env bash
# Twenty-second session (2026-11-28), one H200: the decode step's kernels on the GPU's clock
# (step_timeline.py), committed tables, PDL as the runtime runs it and, for 0.6B, off.
#   OUT=dir bash benchmarks/run_session22_timeline.sh
. benchmarks/_session.sh
tl() {  # MODEL CELLS NAME
  timeout 200 python3 benchmarks/step_timeline.py "$OUT/timeline_$3.json" --model "$1" \
    --table "$R/dispatch_$1_H100.json" --cells "$2" 2>&1 | quiet | grep -v "capture compiles\|untuned\|_check_table" | tail -40
}
tl qwen3-0.6b 1x256,8x256 qwen3-0.6b
KERNEL_SEARCH_PDL=0 tl qwen3-0.6b 1x256 qwen3-0.6b_pdl0
tl qwen3-8b 1x256 qwen3-8b
