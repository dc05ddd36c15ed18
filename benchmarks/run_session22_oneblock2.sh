#!/usr/bin/env bash
# Twenty-second session (2026-11-28), one H200: the down_residual M = 1 winner of run_session22_down_tune.sh
# (SPLIT_K 12, one block a split) and the one-block variant of run_session22_oneblock.sh against the
# committed config, in the 0.6B decode step at batch 1 (tables_ab.py: A B C C B A).
#   OUT=dir bash benchmarks/run_session22_oneblock2.sh
. benchmarks/_session.sh
V=$R/session22_H200_2026-11-28/variants
timeout 200 python3 benchmarks/tables_ab.py --model qwen3-0.6b --table committed=$R/dispatch_qwen3-0.6b_H100.json \
  --table down_bk512_s6=$V/0.6b_down_bk512_s6.json --table down_tuned_s12=$V/0.6b_down_tuned_s12.json \
  --batches 1 --out "$OUT/oneblock2_0.6b.json" 2>&1 | quiet | grep -v "capture compiles\|untuned\|_check_table" | tail -6
