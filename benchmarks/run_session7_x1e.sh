#!/usr/bin/env bash
# Seventh session (2026-11-26), fifth nvidia-h100-x1 call: the end-to-end check of the 0.6B
# decode_attention tune again, now at two caches a bucket (near its low end and at its middle) with the
# arms in both orders (`tune` on the finished studies only re-runs the check), exported, merged into
# the committed GEMM table, and the step with it against the committed one.
#   OUT=dir bash benchmarks/run_session7_x1e.sh
. benchmarks/_session.sh
m=qwen3-0.6b
work=$(mktemp -d); db="$work/attn7_$m.db"
gunzip -c "$R/attention_s7_H100_2026-11-26/5_tune_qwen3-0.6b.db.gz" > "$db"
timeout 330 python3 -m cli.app tune --model $m --op decode_attention --buckets 1,8,32 --contexts 256,1024,4096,16384 \
  --trials 12 --seconds 110 --db "sqlite:///$db" > "$OUT/attn7c_tune_$m.log" 2>&1
echo "tune rc $?"; quiet < "$OUT/attn7c_tune_$m.log" | grep -v "^decode attention, \|^table: \|^unfused: \|^previous: " | tail -24
python3 -m cli.app export --model $m --db "sqlite:///$db" -o "$OUT/dispatch_attn7c_${m}_H100_$day.json" 2>&1 | tail -3
python3 -m cli.app merge "$R/dispatch_${m}_H100.json" "$OUT/dispatch_attn7c_${m}_H100_$day.json" -o "$OUT/merged7c_$m.json" | tail -1
e2e() { timeout 120 python3 benchmarks/e2e_matrix.py --models $m --batches 1,8,32 --contexts 256,2048,8192 --arms table "$@" 2>&1 | quiet | grep tok/s; }
e2e --table "$m=$OUT/merged7c_$m.json" --out "$work/new_4.json"
e2e --table "$m=$R/dispatch_${m}_H100.json" --out "$work/old_4.json"
python3 benchmarks/e2e_rounds.py "$work" "$OUT/e2e_attn7c_${m}_H100_$day.json" table_attn7c
rm -f "$db.lock"; gzip -f "$db"; mv "$db.gz" "$OUT/"
