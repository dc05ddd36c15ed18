#!/usr/bin/env bash
# Twenty-eighth session (2026-11-29), one H200: (1) which half of a last-program split-K launch goes
# wrong on the configs spec.LAST_PROGRAM_UNSAFE refuses (splitk_race_halves.py), with PDL and without;
# (2) the loop plan's fused q/k prep at Qwen3-1.7B (a KV head serving two q heads, as at 0.6B, where the
# rule was set), ABAB against the prep kernel separate, the committed 1.7B GEMM table.
#   OUT=dir [CELLS_17=...] [SECS_17=s] bash benchmarks/run_session28_race.sh
. benchmarks/_session.sh
timeout 150 python3 -m benchmarks.splitk_race_halves --out "$OUT/halves.json" --repeats 6 2>&1 | quiet | tail -20
KERNEL_SEARCH_PDL=0 timeout 100 python3 -m benchmarks.splitk_race_halves --out "$OUT/halves_nopdl.json" \
  --repeats 6 --cases 3 2>&1 | quiet | tail -8
env_ab_cells loop_prep_qwen3-1.7b qwen3-1.7b "$R/dispatch_qwen3-1.7b_H100.json" \
  "${CELLS_17:-4x2048,8x2048,16x4096,8x8192}" "${SECS_17:-300}" KERNEL_SEARCH_ATTN_LOOP_PREP separate,fused
