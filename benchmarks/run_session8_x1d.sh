#!/usr/bin/env bash
# Eighth session (2026-11-26), fourth nvidia-h100-x1 call: the 0.6B prefill cells again, ours also as
# the CUDA graph the runtime replays up to 8,192 tokens (the eager forward was launch-bound at
# 32 x 256), beside torch.compile; then the runtime's own prefill (e2e_matrix, table arm) at those cells.
#   OUT=dir bash benchmarks/run_session8_x1d.sh
. benchmarks/_session.sh
m=qwen3-0.6b
timeout 200 python3 benchmarks/prefill_profile.py --model $m --cells 32x256,8x2048,1x8192 --top 6 \
  --out "$OUT/prefill_profile_graph_${m}_H100_$day.json" 2>&1 | quiet | grep -v "^  " | tail -8
timeout 200 python3 benchmarks/e2e_matrix.py --models $m --batches 8,32 --contexts 256,2048 --arms table \
  --table "$m=$R/dispatch_${m}_H100.json" --out "$OUT/e2e_prefill_rows_${m}_H100_$day.json" 2>&1 | quiet | grep "tok/s" | tail -8
