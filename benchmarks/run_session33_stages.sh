#!/usr/bin/env bash
# Thirty-third session (2026-11-29), one H200: batch-1 decode attention with deeper K/V pipelines (more
# of a program's chunk in flight at once: num_stages 2-4 at BLOCK_N 16-64, 2 and 4 warps, 32-128 splits;
# compiled for sm_90, 5 programs an SM fit at BLOCK_N 64 and 2 stages, 4 at BLOCK_N 32 and 4 stages).
#   OUT=dir bash benchmarks/run_session33_stages.sh
source benchmarks/_session.sh
timeout 500 python3 benchmarks/attn_split_probe.py "$OUT/attn_stages.json" --top 12 \
  --cells qwen3-0.6b:1:8192,qwen3-0.6b:1:16384,qwen3-8b:1:8192 --splits 32,48,64,96,128 --block-n 16,32,64 \
  --stages 2,3,4 --warps 2,4 --combines kernel --kv loop 2>&1 | quiet | cut -c1-300
