#!/usr/bin/env bash
# Seventeenth session (2026-11-27), one nvidia-h100-x1 call, run on branch session17-fused-mlp only (the
# kernel kernel_space/fused_mlp.py and benchmarks/mlp_probe.py, taken out of main after this run, where
# they lost): the MLP as one launch against the committed tables' two, per op and in the decode step.
#   OUT=dir bash benchmarks/run_session17_mlp.sh
source benchmarks/_session.sh
timeout 330 python3 benchmarks/mlp_probe.py "$OUT/mlp_probe_0.6b.json" --model qwen3-0.6b \
  --table $R/dispatch_qwen3-0.6b_H100.json --ms 1,8,32 --transposed --diagnose --cells 1x256,8x256,32x256 --rounds 3 2>&1 | quiet
timeout 230 python3 benchmarks/mlp_probe.py "$OUT/mlp_probe_8b.json" --model qwen3-8b \
  --table $R/dispatch_qwen3-8b_H100.json --ms 1,8 --diagnose --cells 1x256,8x256 --rounds 2 2>&1 | quiet
