#!/usr/bin/env bash
# Eleventh session (2026-11-27): where the decode step's time goes, kernel by kernel, with the
# committed tables (step_profile.py): 8B batch 32 and 1 x 256, 0.6B batch 1, 8 and 32 x 256.
#   OUT=dir bash benchmarks/run_session11_profile.sh
. benchmarks/_session.sh
timeout 280 python3 benchmarks/step_profile.py "$OUT/step_profile_8b.json" --model qwen3-8b \
  --table $R/dispatch_qwen3-8b_H100.json --cells 32x256,1x256 --top 14 2>&1 | quiet | cut -c1-140
timeout 250 python3 benchmarks/step_profile.py "$OUT/step_profile_0.6b.json" --model qwen3-0.6b \
  --table $R/dispatch_qwen3-0.6b_H100.json --cells 1x256,32x256 --top 14 2>&1 | quiet | cut -c1-140
