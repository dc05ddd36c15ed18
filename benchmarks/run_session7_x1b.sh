#!/usr/bin/env bash
# Seventh session (2026-11-26), second nvidia-h100-x1 call: does a cell's place in a process change its
# time (order_probe.py)? Then the 0.6B decode_attention tune of the first call resumed with batch 32
# (end-to-end check in both orders), exported, merged into the committed GEMM table, and the step
# with it against the committed table at batch 32, alternating, two rounds.
#   OUT=dir bash benchmarks/run_session7_x1b.sh
. benchmarks/_session.sh
m=qwen3-0.6b
timeout 90 python3 benchmarks/order_probe.py --model $m --out "$OUT/order_probe_H100_$day.json" 2>&1 | quiet | tail -12
work=$(mktemp -d); db="$work/attn7_$m.db"
# The first call's database; the one kept ($R/attention_s7_H100_2026-11-26/5_tune_qwen3-0.6b.db.gz) holds batch 32 too.
gunzip -c "$R/attention_s7_H100_2026-11-26/5_tune_qwen3-0.6b.db.gz" > "$db"
timeout 300 python3 -m cli.app tune --model $m --op decode_attention --buckets 1,8,32 --contexts 256,1024,4096,16384 \
  --trials 12 --seconds 110 --db "sqlite:///$db" > "$work/attn7b_tune_$m.log" 2>&1
echo "tune rc $?"; quiet < "$work/attn7b_tune_$m.log" | tail -32
python3 -m cli.app export --model $m --db "sqlite:///$db" -o "$OUT/dispatch_attn7b_${m}_H100_$day.json" 2>&1 | tail -3
python3 -m cli.app merge "$R/dispatch_${m}_H100.json" "$OUT/dispatch_attn7b_${m}_H100_$day.json" -o "$OUT/merged7b_$m.json" | tail -1
e2e() { timeout 120 python3 benchmarks/e2e_matrix.py --models $m --batches 32 --contexts 256,2048 --arms table "$@" 2>&1 | quiet | grep tok/s; }
for round in 1 2; do
  e2e --table "$m=$OUT/merged7b_$m.json" --out "$work/new_$round.json"
  e2e --table "$m=$R/dispatch_${m}_H100.json" --out "$work/old_$round.json"
done
python3 benchmarks/e2e_rounds.py "$work" "$OUT/e2e_attn7b_${m}_H100_$day.json" table_attn7b
rm -f "$db.lock"; gzip -f "$db"
tar czf "$OUT/attn7b_${m}_logs_db.tgz" -C "$work" "attn7b_tune_$m.log" "attn7_$m.db.gz"
