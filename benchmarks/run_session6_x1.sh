#!/usr/bin/env bash
# Sixth session (2026-11-26), first x1 call: the search-efficiency grid (four (op, M) cases, 196-552
# configs each), then decode_attention tuned for Qwen3-0.6B and Qwen3-8B at batch 1, 8, 32 and the
# default context buckets (to be merged into the committed GEMM tables with `kernel-search merge`).
#   OUT=dir bash benchmarks/run_session6_x1.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
day=$(date +%F)
nvidia-smi -L
timeout 220 python3 benchmarks/search_efficiency.py measure --out "$OUT" > "$OUT/search_efficiency_measure.log" 2>&1
tail -3 "$OUT/search_efficiency_measure.log"
for m in qwen3-0.6b qwen3-8b; do
  db="$OUT/attn_$m.db"
  python3 -m cli.app tune --model $m --op decode_attention --buckets 1,8,32 --trials 20 --seconds 150 \
    --no-bench --db "sqlite:///$db" > "$OUT/attn_tune_$m.log" 2>&1
  grep -v "━" "$OUT/attn_tune_$m.log" | tail -4
  python3 -m cli.app export --model $m --db "sqlite:///$db" -o "$OUT/dispatch_attn_${m}_H100_$day.json" 2>&1 | tail -2
  gzip -f "$db"
done
