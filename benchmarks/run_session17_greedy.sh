#!/usr/bin/env bash
# Seventeenth session (2026-11-27), one nvidia-h100-x1 call:
# 1. greedy_probe.py: greedy decoding with the argmax inside the decode graph (Generator.decode_greedy)
#    against the logits copied out and arg-maxed outside it, 0.6B and 8B on the committed tables;
# 2. repeat_check.py: every committed fused GEMM config at M 1, 8 and 32 launched 50 times on the same
#    inputs, outputs compared bitwise (the fused MLP's race was on the tensor-core path).
#   OUT=dir bash benchmarks/run_session17_greedy.sh
source benchmarks/_session.sh
timeout 150 python3 benchmarks/greedy_probe.py "$OUT/greedy_probe_0.6b.json" --model qwen3-0.6b \
  --table $R/dispatch_qwen3-0.6b_H100.json --cells 1x256,8x256,32x256,32x2048 --rounds 5 2>&1 | quiet
timeout 170 python3 benchmarks/greedy_probe.py "$OUT/greedy_probe_8b.json" --model qwen3-8b \
  --table $R/dispatch_qwen3-8b_H100.json --cells 1x256,8x256,32x256 --rounds 3 2>&1 | quiet
timeout 200 python3 benchmarks/repeat_check.py "$OUT/repeat_check.json" --table $R/dispatch_qwen3-0.6b_H100.json \
  --table $R/dispatch_qwen3-8b_H100.json --ms 1,8,32 2>&1 | quiet
