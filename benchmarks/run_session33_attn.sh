#!/usr/bin/env bash
# Thirty-third session (2026-11-29), one H200: where batch-1 decode attention's time goes at 8k-16k on
# this GPU (issue 13's 80% of the copy bandwidth): a plain streaming read of the same bytes and an empty
# launch (stream_floor_probe.py), the loop-free variant (attn_flat_probe.py), and the kernel at 64-256
# splits, kv loop and early (attn_split_probe.py), each in attn_bench's harness.
#   OUT=dir bash benchmarks/run_session33_attn.sh
source benchmarks/_session.sh
timeout 120 python3 benchmarks/stream_floor_probe.py "$OUT/stream_floor.json" --contexts 8192,16384,32768 2>&1 | quiet | cut -c1-300
timeout 120 python3 benchmarks/attn_flat_probe.py "$OUT/attn_flat.json" \
  --cells qwen3-0.6b:1:8192,qwen3-0.6b:1:16384,qwen3-8b:1:8192 2>&1 | quiet | cut -c1-300
timeout 300 python3 benchmarks/attn_split_probe.py "$OUT/attn_split.json" --top 10 \
  --cells qwen3-0.6b:1:8192,qwen3-0.6b:1:16384,qwen3-8b:1:8192 --splits 48,64,96,128,192,256 \
  --combines kernel --kv loop,early 2>&1 | quiet | cut -c1-300
