#!/usr/bin/env bash
# Seventeenth session (2026-11-27), nvidia-h100-x1, run on branch session17-ss-tile only (the kernel
# change _gemm.SS_TILE and benchmarks/ss_tile_probe.py, taken out of main after this run: mixed):
# 1. ss_tile_probe.py: the inline norm's sum of squares kept as a tile in tl.dot K loops (this code)
#    against a row sum every step (before), the same configs, at Qwen3-1.7B and 8B norm sites;
# 2. Qwen3-1.7B's two norm sites re-tuned at M = 1 and 8 (48 configs a study) over this session's
#    1.7B table (restamped: its configs compile to the same PTX on this code), whose step check runs
#    the new table beside it.
#   OUT=dir bash benchmarks/run_session17_sstile.sh
. benchmarks/_session.sh
timeout 120 python3 benchmarks/ss_tile_probe.py "$OUT/ss_tile_probe.json" \
  --cases qwen3-1.7b:rmsnorm_qkv:1,qwen3-1.7b:rmsnorm_gate_up_silu:1,qwen3-8b:rmsnorm_qkv:1 2>&1 | quiet
m=qwen3-1.7b
db=/tmp/ks17_17b_norm.db
rm -f $db
export KERNEL_SEARCH_DB=sqlite:///$db
python3 benchmarks/restamp_table.py $R/session17_H100_2026-11-27/dispatch_${m}_H100.json /tmp/prev_${m}.json | tail -1
python3 -m cli.app import /tmp/prev_${m}.json | tail -1
start=$(date +%s)
timeout 150 python3 -m cli.app tune --model $m --op rmsnorm_qkv --op rmsnorm_gate_up_silu --buckets 1,8 --trials 48 \
  > "$OUT/tune_${m}_norm.log" 2>&1
echo "tune rc=$? in $(( $(date +%s) - start )) s"
grep -v "━" "$OUT/tune_${m}_norm.log" | quiet | grep -v "capture compiles\|^decode attention" | tail -16 | cut -c1-170
key=$(python3 -c "from kernel_space.fingerprint import current_fingerprint; from storage.store import fingerprint_key; print(fingerprint_key(current_fingerprint()))")
python3 -m cli.app export --model $m --gpu "$key" -o "$OUT/dispatch_${m}_H100_norm.json" 2>&1 | tail -2
gzip -c $db > "$OUT/tune_${m}_norm.db.gz"
