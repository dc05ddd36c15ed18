#!/usr/bin/env bash
# The last short GPU call of 2026-11-26 (third session): GPU tests of the fused-prep decode attention,
# the prefill path and the parity fix; the prefill-heavy matrix cells (unfused and table arms: the
# torch.compile peer's numbers are this morning's, same GPU kind); the fused-prep probe; prefill bench.
#   OUT=dir bash benchmarks/run_final_x1.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
day=$(date +%F)
timeout 170 python3 -m pytest -q -p no:cacheprovider --tb=short \
  tests/qwen3/test_gpu.py::test_prefill_graphs_give_the_eager_logits \
  tests/qwen3/test_gpu.py::test_bf16_logits_match_transformers_at_06b \
  tests/qwen3/test_gpu.py::test_prep_fused_in_graph_decode_equals_separate \
  tests/qwen3/test_gpu.py::test_cuda_graph_decode_equals_eager \
  tests/kernel_space/test_prefill.py tests/kernel_space/test_decode_attention_prep.py \
  > "$OUT/test_gpu_final_H100_$day.log" 2>&1
tail -3 "$OUT/test_gpu_final_H100_$day.log"
T="qwen3-0.6b=benchmarks/results/dispatch_qwen3-0.6b_H100.json"
M="$OUT/e2e_matrix_prefill_path_H100_$day.json"
{
  timeout 45 python3 benchmarks/e2e_matrix.py --models qwen3-0.6b --batches 8 --contexts 2048 --arms unfused,table \
    --table "$T" --out "$M"
  timeout 45 python3 benchmarks/e2e_matrix.py --models qwen3-0.6b --batches 1,32 --contexts 256 --arms unfused,table \
    --table "$T" --out "$M"
  timeout 45 python3 benchmarks/e2e_matrix.py --models qwen3-0.6b --batches 1 --contexts 8192 --arms unfused,table \
    --table "$T" --out "$M"
} 2>&1 | grep -v "Warning\|_mismatch\|warnings.warn" > "$OUT/e2e_matrix_prefill_path_H100_$day.txt"
cat "$OUT/e2e_matrix_prefill_path_H100_$day.txt"
timeout 90 python3 benchmarks/attn_step_probe.py "$OUT/attn_prep_probe_qwen3-0.6b_H100_$day.json" --batches 1,8 \
  --context 4032 --config '{"prep": "fused", "combine": "last_program"}' > "$OUT/attn_prep_probe_qwen3-0.6b_H100_$day.txt" 2>&1
cat "$OUT/attn_prep_probe_qwen3-0.6b_H100_$day.txt"
timeout 70 python3 benchmarks/prefill_bench.py "$OUT/prefill_bench_path_qwen3-0.6b_H100_$day.json" --batches 1,8 \
  --contexts 2048,8192 --repeats 5 > "$OUT/prefill_bench_path_qwen3-0.6b_H100_$day.txt" 2>&1
cat "$OUT/prefill_bench_path_qwen3-0.6b_H100_$day.txt"
grep -B2 -A12 "^___\|Error\|FAILED" "$OUT/test_gpu_final_H100_$day.log" | head -120
