#!/usr/bin/env bash
# Twenty-second session (2026-11-28), one H200: the decode step with and without the q/k prep kernel
# (prep_bound_probe.py: the most a QKV-epilogue prep could save), ABAB, committed tables.
#   OUT=dir bash benchmarks/run_session22_prep.sh
. benchmarks/_session.sh
probe() {  # MODEL CELLS
  timeout 240 python3 benchmarks/prep_bound_probe.py "$OUT/prep_bound_$1.json" --model "$1" \
    --table "$R/dispatch_$1_H100.json" --cells "$2" 2>&1 | quiet | grep -v "capture compiles\|untuned\|_check_table" | tail -5
}
probe qwen3-0.6b 1x256,8x256,1x2048
probe qwen3-1.7b 1x256
probe qwen3-8b 1x256
