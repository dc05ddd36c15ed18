#!/usr/bin/env bash
# One x1 call (2026-11-26, fourth session): the prefill-graph fix on the GPU; the end-to-end bench of the
# tables a 1-GPU and a 4-GPU distributed tune wrote (same machine, same studies); the table arm of the
# matrix's long-context cells with the decode-attention plan of 2 programs an SM (the torch.compile
# arm's numbers are the matrix's, same GPU kind, same day).
#   OUT=dir bash benchmarks/run_session4_x1.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
day=$(date +%F)
timeout 150 python3 -m pytest -q -p no:cacheprovider --tb=short \
  tests/qwen3/test_gpu.py::test_prefill_graphs_give_the_eager_logits > "$OUT/test_gpu_prefill_graph_H100_$day.log" 2>&1
tail -3 "$OUT/test_gpu_prefill_graph_H100_$day.log"
D=benchmarks/results/distributed_tables_H100_2026-11-26
quiet() { grep -v "Warning\|_mismatch\|warnings.warn\|softmax"; }
for round in 1 2; do
  for n in 1gpu 4gpu; do
    timeout 60 python3 benchmarks/e2e_matrix.py --models qwen3-0.6b --batches 1,8 --contexts 256 --arms table \
      --repeats 5 --table "qwen3-0.6b=$D/dispatch_qwen3-0.6b_$n.json" --out "$OUT/distributed_e2e_${n}_$round.json" 2>&1 | quiet
  done
done
T06="qwen3-0.6b=benchmarks/results/dispatch_qwen3-0.6b_H100.json"
T8="qwen3-8b=benchmarks/results/dispatch_qwen3-8b_H100.json"
M="$OUT/e2e_matrix_plan2_H100_$day.json"
timeout 150 python3 benchmarks/e2e_matrix.py --models qwen3-0.6b --batches 1,8,32 --contexts 2048,8192,32768 \
  --arms table --table "$T06" --out "$M" 2>&1 | quiet
timeout 200 python3 benchmarks/e2e_matrix.py --models qwen3-8b --batches 1,8 --contexts 2048,8192,32768 \
  --arms table --table "$T8" --out "$M" 2>&1 | quiet
timeout 100 python3 benchmarks/e2e_matrix.py --models qwen3-8b --batches 32 --contexts 2048,8192 \
  --arms table --table "$T8" --out "$M" 2>&1 | quiet
grep -B2 -A30 "^___\|Error\|FAILED" "$OUT/test_gpu_prefill_graph_H100_$day.log" | head -60
