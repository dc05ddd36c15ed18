#!/usr/bin/env bash
# Seventh session (2026-11-26), nvidia-h100-x1: the first GPU run of tune's end-to-end check of decode
# attention buckets. Tune decode_attention for Qwen3-0.6B at batch 1 and 8 over four context buckets
# with the check on, export (a bucket whose step is faster on the default plan is written `plan`),
# merge into the committed GEMM table, then the step with that table against the committed one
# (default plan), alternating, ROUNDS rounds.
#   OUT=dir bash benchmarks/run_session7_x1.sh
. benchmarks/_session.sh
ROUNDS=${ROUNDS:-2}
m=qwen3-0.6b
db="$OUT/attn7_$m.db"
timeout 300 python3 -m cli.app tune --model $m --op decode_attention --buckets 1,8 --contexts 256,1024,4096,16384 \
  --trials 12 --seconds 110 --db "sqlite:///$db" > "$OUT/attn7_tune_$m.log" 2>&1
echo "tune rc $?"; quiet < "$OUT/attn7_tune_$m.log" | tail -40
python3 -m cli.app export --model $m --db "sqlite:///$db" -o "$OUT/dispatch_attn7_${m}_H100_$day.json" 2>&1 | tail -6
python3 -m cli.app merge "$R/dispatch_${m}_H100.json" "$OUT/dispatch_attn7_${m}_H100_$day.json" -o "$OUT/merged7.json"
python3 -m cli.app query --db "sqlite:///$db" --model $m 2>&1 | tail -30
e2e() { timeout 140 python3 benchmarks/e2e_matrix.py --models $m --batches 1,8 --contexts 256,2048,8192 --arms table "$@" 2>&1 | quiet | tail -8; }
for round in $(seq "$ROUNDS"); do
  e2e --table "$m=$OUT/merged7.json" --out "$OUT/new_$round.json"
  e2e --table "$m=$R/dispatch_${m}_H100.json" --out "$OUT/old_$round.json"
done
python3 benchmarks/e2e_rounds.py "$OUT" "$OUT/e2e_attn7_${m}_H100_$day.json" table_attn7 --remove
gzip -f "$db"
