#!/usr/bin/env bash
# Twenty-ninth session (2026-11-29), one H200: what split-K's reduction costs o_proj and down in the
# decode step (benchmarks/accumulate_probe.py: the table, each split added into an fp32 buffer by an
# atomic, the same with twice the splits, and both sites skipped), committed tables, two rounds ABAB.
#   OUT=dir bash benchmarks/run_session29_accumulate.sh
source benchmarks/_session.sh
acc() {  # acc MODEL CELLS SECONDS
  timeout "$3" python3 benchmarks/accumulate_probe.py "$OUT/accumulate_$1.json" --model "$1" \
    --table "$R/dispatch_$1_H100.json" --cells "$2" --rounds 2 2>&1 | quiet \
    | grep -v "capture compiles\|untuned\|_check_table" | grep "check\|round\|x [0-9]*:\|Error\|error" | cut -c1-160
}
acc qwen3-0.6b 1x256,8x256,1x2048 200
acc qwen3-1.7b 1x256 100
[ -n "${SKIP_8B:-}" ] || acc qwen3-8b 1x256,8x256 200
