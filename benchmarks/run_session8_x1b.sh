#!/usr/bin/env bash
# Eighth session (2026-11-26), second nvidia-h100-x1 call: where the 0.6B prefill cells that take over
# 1.2x torch.compile's time (batch 8 x 2k, batch 32 x 256) spend it, kernel by kernel, beside the peer.
#   OUT=dir bash benchmarks/run_session8_x1b.sh
. benchmarks/_session.sh
timeout 500 python3 benchmarks/prefill_profile.py --model qwen3-0.6b --cells 32x256,8x2048 \
  --out "$OUT/prefill_profile_qwen3-0.6b_H100_$day.json" 2>&1 | quiet | tail -50
