#!/usr/bin/env bash
# Seventh session (2026-11-26), third nvidia-h100-x1 call: order_probe.py with the committed 0.6B table
# (batch 8 first, then 1), then decode_attention tuned for Qwen3-8B at batch 1, 8, 32 (end-to-end
# check on, in both orders), exported, merged into the committed 8B GEMM table, and the step with it
# against the committed table, alternating.
#   OUT=dir bash benchmarks/run_session7_x1c.sh
. benchmarks/_session.sh
timeout 90 python3 benchmarks/order_probe.py --model qwen3-0.6b --table $R/dispatch_qwen3-0.6b_H100.json --batches 8,1 \
  --out "$OUT/order_probe_table_H100_$day.json" 2>&1 | quiet | tail -12
m=qwen3-8b
work=$(mktemp -d); db="$work/attn7_$m.db"
timeout 330 python3 -m cli.app tune --model $m --op decode_attention --buckets 1,8,32 --contexts 256,1024,4096,16384 \
  --trials 12 --seconds 140 --db "sqlite:///$db" > "$work/attn7_tune_$m.log" 2>&1
echo "tune rc $?"; quiet < "$work/attn7_tune_$m.log" | grep -v "^decode attention, \|^table: \|^unfused: " | tail -30
python3 -m cli.app export --model $m --db "sqlite:///$db" -o "$OUT/dispatch_attn7_${m}_H100_$day.json" 2>&1 | tail -3
python3 -m cli.app merge "$R/dispatch_${m}_H100.json" "$OUT/dispatch_attn7_${m}_H100_$day.json" -o "$OUT/merged7_$m.json" | tail -1
e2e() { timeout 130 python3 benchmarks/e2e_matrix.py --models $m --batches 1,8,32 --contexts 256,2048 --arms table "$@" 2>&1 | quiet | grep tok/s; }
e2e --table "$m=$OUT/merged7_$m.json" --out "$work/new_1.json"
e2e --table "$m=$R/dispatch_${m}_H100.json" --out "$work/old_1.json"
python3 benchmarks/e2e_rounds.py "$work" "$OUT/e2e_attn7_${m}_H100_$day.json" table_attn7
rm -f "$db.lock"; gzip -f "$db"
tar czf "$OUT/attn7_${m}_logs_db.tgz" -C "$work" "attn7_tune_$m.log" "attn7_$m.db.gz"
