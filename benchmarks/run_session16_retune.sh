#!/usr/bin/env bash
# Sixteenth session (2026-11-27), nvidia-h100-x1: re-tune Qwen3-0.6B's five GEMM sites at the decode
# buckets of the committed table (M = 1..32), 40 configs a study, on the current code. This session's
# one-GPU tune of the four layer GEMMs (--no-bench) made a table that decoded 5-12% faster than tables
# of earlier sessions, so the committed table is imported first (each study measures its config
# first; the decode attention rows stay) and the tune's step check compares the new table with it in
# one process before export keeps the faster choice per batch.
#   OUT=dir bash benchmarks/run_session16_retune.sh
. benchmarks/_session.sh
m=qwen3-0.6b
db=/tmp/ks16_retune.db
rm -f $db
export KERNEL_SEARCH_DB=sqlite:///$db
python3 -m cli.app import $R/dispatch_${m}_H100.json | tail -1
start=$(date +%s)
timeout 480 python3 -m cli.app tune --model $m --op rmsnorm_qkv --op o_proj_residual \
  --op rmsnorm_gate_up_silu --op down_residual --op lm_head --buckets 1,2,4,8,16,32 --trials 40 \
  > "$OUT/tune_${m}.log" 2>&1
echo "tune rc=$? in $(( $(date +%s) - start )) s"
grep -v "━" "$OUT/tune_${m}.log" | quiet | tail -40 | cut -c1-170
key=$(python3 -c "from kernel_space.fingerprint import current_fingerprint; from storage.store import fingerprint_key; print(fingerprint_key(current_fingerprint()))")
python3 -m cli.app export --model $m --gpu "$key" -o "$OUT/dispatch_${m}.json" 2>&1 | tail -3
gzip -c $db > "$OUT/tune_${m}.db.gz"
