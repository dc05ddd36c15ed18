#!/usr/bin/env bash
# Eighth session (2026-11-26), third nvidia-h100-x1 call: the prefill profile again with the prompt
# kernel of qk_norm_rope_cache (blocks of tokens a program), beside torch.compile, at the prefill cells
# over 1.2x its time in the end-to-end matrix (0.6B batch 8 x 2k, 32 x 256, 32 x 2k; 8B batch 8 and 32 x 256).
#   OUT=dir bash benchmarks/run_session8_x1c.sh
. benchmarks/_session.sh
timeout 280 python3 benchmarks/prefill_profile.py --model qwen3-0.6b --cells 32x256,8x2048,32x2048 --top 10 \
  --out "$OUT/prefill_profile_rows_qwen3-0.6b_H100_$day.json" 2>&1 | quiet | grep -v "^  peer" | tail -30
timeout 250 python3 benchmarks/prefill_profile.py --model qwen3-8b --cells 8x256,32x256 --top 10 \
  --out "$OUT/prefill_profile_rows_qwen3-8b_H100_$day.json" 2>&1 | quiet | grep -v "^  peer" | tail -20
