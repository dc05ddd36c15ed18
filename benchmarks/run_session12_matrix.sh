#!/usr/bin/env bash
# Twelfth session (2026-11-27), on nvidia-h100-x4: the matrix cells last measured on 2026-11-26 (before
# the sessions since changed decode attention, the PDL rule and the tables), table beside
# torch.compile, one process a GPU (as run_matrix_x4.sh), the committed tables. PART picks the cells.
#   OUT=dir PART=1 LIMIT=540 bash benchmarks/run_session12_matrix.sh
set -u
OUT=${OUT:-benchmarks/results/new}
LIMIT=${LIMIT:-540}
PART=${PART:-1}
mkdir -p "$OUT" .matrix
export TORCHINDUCTOR_COMPILE_THREADS=16
T06="qwen3-0.6b=benchmarks/results/dispatch_qwen3-0.6b_H100.json"
T8="qwen3-8b=benchmarks/results/dispatch_qwen3-8b_H100.json"
m() {  # gpu model batches contexts
  python3 benchmarks/e2e_matrix.py --models "$2" --batches "$3" --contexts "$4" --table "$T06" --table "$T8" \
    --arms table,torch_compile --out ".matrix/s12_part${PART}_gpu$1.json"
}
if [ "$PART" = 1 ]; then
  gpu0() { m 0 qwen3-8b 1 8192; m 0 qwen3-0.6b 1 32768; }
  gpu1() { m 1 qwen3-0.6b 1 2048,8192; m 1 qwen3-0.6b 8 32768; }
  gpu2() { m 2 qwen3-8b 8 2048,8192; }
  gpu3() { m 3 qwen3-8b 1 2048; m 3 qwen3-8b 32 8192; }
elif [ "$PART" = 2 ]; then
  gpu0() { m 0 qwen3-8b 1 32768; }
  gpu1() { m 1 qwen3-8b 8 32768; }
  gpu2() { m 2 qwen3-8b 32 256; }
  gpu3() { m 3 qwen3-0.6b 32 8192; }
else  # the cells the ninth and tenth sessions measured, again on this code
  gpu0() { m 0 qwen3-0.6b 1,8 256; }
  gpu1() { m 1 qwen3-0.6b 32 256; m 1 qwen3-0.6b 8 2048; }
  gpu2() { m 2 qwen3-0.6b 32 2048; m 2 qwen3-0.6b 8 8192; }
  gpu3() { m 3 qwen3-8b 1,8 256; }
fi
for g in 0 1 2 3; do
  (export CUDA_VISIBLE_DEVICES=$g PART; export -f m gpu$g; export T06 T8
   timeout -k 5 "$LIMIT" bash -c "gpu$g" >> ".matrix/s12_log_part${PART}_gpu$g.txt" 2>&1) &
done
wait
cp .matrix/s12_part${PART}_gpu*.json .matrix/s12_log_part${PART}_gpu*.txt "$OUT"/ 2>/dev/null
for f in "$OUT"/s12_part${PART}_gpu*.json; do python3 benchmarks/e2e_matrix.py --render "$f" 2>&1 | tail -8; done
for g in 0 1 2 3; do echo "== gpu$g"; grep -i "error\|Traceback\|killed\|skip" ".matrix/s12_log_part${PART}_gpu$g.txt" | tail -3 | cut -c1-200; done
