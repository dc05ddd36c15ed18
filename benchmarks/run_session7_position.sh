#!/usr/bin/env bash
# Seventh session (2026-11-26), last nvidia-h100-x1 call: does the batch-8 x 256 cell depend on being a
# process's first cell? The committed 0.6B table (with its tuned attention rows) and the table before
# them, each at batch 8 alone (first cell), then each at batch 1 then 8 (batch 8 second), one machine.
#   OUT=dir BEFORE=old_table.json bash benchmarks/run_session7_position.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
m=qwen3-0.6b; R=benchmarks/results
NEW=$R/dispatch_${m}_H100.json; OLD=${BEFORE:?the table before the attention rows}
quiet() { grep -v "Warning\|_mismatch\|warnings.warn\|softmax\|━\|^ *$"; }
run() { timeout 60 python3 benchmarks/e2e_matrix.py --models $m --contexts 256 --arms table --repeats 5 "$@" 2>&1 | quiet | grep tok/s; }
for t in new old; do
  table=$NEW; [ $t = old ] && table=$OLD
  echo "== $t: batch 8 alone"; run --batches 8 --table "$m=$table" --out "$OUT/pos_${t}_8.json"
  echo "== $t: batch 1, then 8"; run --batches 1,8 --table "$m=$table" --out "$OUT/pos_${t}_1_8.json"
done
