#!/usr/bin/env bash
# End-to-end runs on a GPU machine: the runtime's GPU tests, `bench` with and without the tuned
# table, and transformers' generate as the reference. Results go to $OUT (default benchmarks/results/new).
#   bash benchmarks/run_e2e.sh tests|0.6b|8b|hf-0.6b|hf-8b ...
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
day=$(date +%F)
for what in "$@"; do
  case $what in
    tests)
      timeout 420 python3 -m pytest -q -s -p no:cacheprovider tests/qwen3/test_gpu.py 2>&1 | tee "$OUT/test_gpu_$day.log" ;;
    0.6b|8b)
      timeout 400 python3 -m cli.app bench --model qwen3-$what --batch 1,8,32 --prompt-len 128 --output-len 128 \
        --table ${TABLES:-benchmarks/results}/dispatch_qwen3-${what}_H100.json --breakdown \
        --json "$OUT/bench_e2e_qwen3-${what}_H100_$day.json" 2>&1 | tee "$OUT/bench_e2e_qwen3-${what}_H100_$day.txt" ;;
    hf-0.6b|hf-8b)
      timeout 200 python3 benchmarks/hf_generate.py --model qwen3-${what#hf-} --batch 1 --output-len 64 \
        --json "$OUT/hf_generate_qwen3-${what#hf-}_H100_$day.json" 2>&1 | tail -3 ;;
    *) echo "unknown: $what" >&2; exit 2 ;;
  esac
done
