#!/usr/bin/env bash
# The end-to-end matrix (benchmarks/e2e_matrix.py) spread over the 4 GPUs of one host, one process
# a GPU, each with its share of the cells; GPU 0 first runs the GPU tests named in $TESTS and the
# attention probe (benchmarks/attn_step_probe.py). Results go to .matrix/ (git-ignored: running the
# script again continues every file where it stopped) and are copied to $OUT at the end. On the lent
# machines .matrix/ did not survive between calls on 2026-11-26 (every call re-ran its cells): to
# continue a run there, put the returned files in .matrix/ here and name .matrix in the call's carry.
#   OUT=dir LIMIT=540 bash benchmarks/run_matrix_x4.sh
set -u
OUT=${OUT:-benchmarks/results/new}
LIMIT=${LIMIT:-540}
mkdir -p "$OUT" .matrix
export TORCHINDUCTOR_COMPILE_THREADS=16
T06="qwen3-0.6b=benchmarks/results/dispatch_qwen3-0.6b_H100.json"
T8="qwen3-8b=benchmarks/results/dispatch_qwen3-8b_H100.json"
m() {  # gpu model batches contexts
  python3 benchmarks/e2e_matrix.py --models "$2" --batches "$3" --contexts "$4" --table "$T06" --table "$T8" \
    --out ".matrix/e2e_matrix_gpu$1.json"
}
gpu0() {
  if [ -n "${TESTS:-}" ]; then
    python3 -m pytest -q -p no:cacheprovider --tb=short $TESTS 2>&1 | tail -60
  fi
  if [ -n "${PROBE:-}" ]; then
    python3 benchmarks/attn_step_probe.py .matrix/probe_4032.json --batches 1,8 --context 4032 \
      --table benchmarks/results/attn_tune_table_qwen3-0.6b_H100_2026-11-26.json
    python3 benchmarks/attn_step_probe.py .matrix/probe_128.json --batches 1 --context 128 \
      --table benchmarks/results/attn_tune_table_qwen3-0.6b_H100_2026-11-26.json
  fi
  m 0 qwen3-0.6b 1 256,2048,8192,32768
  m 0 qwen3-8b 32 256
}
gpu1() { m 1 qwen3-0.6b 8 256,2048,8192,32768; m 1 qwen3-0.6b 32 256,2048,8192; }
gpu2() { m 2 qwen3-8b 1 256,2048,8192,32768; m 2 qwen3-8b 8 256; }
gpu3() { m 3 qwen3-8b 8 2048,8192,32768; m 3 qwen3-8b 32 2048,8192; }
for g in 0 1 2 3; do
  (export CUDA_VISIBLE_DEVICES=$g; export -f m gpu$g; export T06 T8 TESTS PROBE
   timeout -k 5 "$LIMIT" bash -c "gpu$g" >> ".matrix/log_gpu$g.txt" 2>&1) &
done
wait
cp .matrix/e2e_matrix_gpu*.json .matrix/log_gpu*.txt "$OUT"/ 2>/dev/null
ls -la "$OUT"
