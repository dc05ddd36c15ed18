#!/usr/bin/env bash
# One short GPU session (2026-11-26, second): the new prefill path and the attention op in the table.
#   OUT=dir bash benchmarks/run_prefill_attn.sh
# 1. GPU tests of the prefill (flash backend, graphs) and the attention kernels and dispatch;
# 2. benchmarks/prefill_bench.py: the old masked prefill against the causal path, eager and graphed;
# 3. a 40-second tune of decode_attention (0.6B, batch 1 and 8, a 4,096-slot cache) with the
#    end-to-end step check, its export, and bench with that table over a 4,096-slot cache.
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
day=$(date +%F)
export KERNEL_SEARCH_DB=sqlite:////tmp/attn.db
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/qwen3/test_gpu.py tests/qwen3/test_kernels.py \
  tests/qwen3/test_attention_dispatch.py -k "prompt_attention or prefill_graphs or bf16_logits or attention or qk_norm" \
  2>&1 | tail -15 > "$OUT/test_gpu_prefill_attn_$day.log"
timeout 80 python3 benchmarks/prefill_bench.py "$OUT/prefill_bench_qwen3-0.6b_H100_$day.json" \
  --batches 1,8 --contexts 128,2048,8192 --repeats 5 2>&1 | tail -25 > "$OUT/prefill_bench_qwen3-0.6b_H100_$day.txt"
{
  timeout 75 python3 -m cli.app tune --model qwen3-0.6b --op decode_attention --buckets 1,8 --contexts 4096 \
    --trials 10 --seconds 40 --bench-batches 1,8 2>&1 | tail -30
  python3 -m cli.app export --model qwen3-0.6b -o "$OUT/attn_tune_table_qwen3-0.6b_H100_$day.json" 2>&1 | tail -5
  timeout 60 python3 -m cli.app bench --model qwen3-0.6b --table "$OUT/attn_tune_table_qwen3-0.6b_H100_$day.json" \
    --batch 1,8 --context 4032 --output-len 64 2>&1 | tail -12
} > "$OUT/attn_tune_bench_qwen3-0.6b_H100_$day.txt" 2>&1
ls -la "$OUT"
