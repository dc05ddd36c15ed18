#!/usr/bin/env bash
# Thirty-seventh session (2026-11-29), one H200: batch-1 decode attention at 8k-32k where the model runs
# it (step_timeline.py: the CUDA-graph decode step's kernels on the GPU's clock; the attention's `adds`
# against its K/V floor), beside the same cells in attn_bench.py's harness (launches of the attention
# back to back), in one call. Qwen3-0.6B (GQA 2) and 8B (GQA 4), the committed H100 tables.
#   OUT=dir [CELLS=1x8192,1x16384,1x32768] bash benchmarks/run_session37_attn.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
nvidia-smi -L
python3 benchmarks/step_timeline.py "$OUT/timeline_b1_06b.json" --model qwen3-0.6b \
  --table benchmarks/results/dispatch_qwen3-0.6b_H100.json --cells "${CELLS:-1x8192,1x16384,1x32768}" 2>&1 \
  | tee "$OUT/timeline_b1.txt" | grep -E "batch|attention|decode_att|\+1 |-1 "
python3 benchmarks/step_timeline.py "$OUT/timeline_b1_8b.json" --model qwen3-8b \
  --table benchmarks/results/dispatch_qwen3-8b_H100.json --cells "${CELLS8B:-1x8192,1x16384}" 2>&1 \
  | tee -a "$OUT/timeline_b1.txt" | grep -E "batch|attention|decode_att|\+1 |-1 "
timeout "${BENCH_LIMIT:-200}" python3 benchmarks/attn_bench.py "$OUT/attn_b1.json" --models qwen3-0.6b,qwen3-8b \
  --batches 1 --contexts 8192,16384 --random 0 2>&1 | tail -12
