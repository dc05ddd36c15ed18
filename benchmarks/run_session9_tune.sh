#!/usr/bin/env bash
# Ninth session (2026-11-27): re-tune a preset's tables on this tree's kernels (the GEMM's early
# weight load, decode attention's one-read combine and K/V prefetch changed every kernel hash).
#   OUT=dir bash benchmarks/run_session9_tune.sh 0.6b gemm 380     # the five GEMM sites, M 1..32
#   OUT=dir bash benchmarks/run_session9_tune.sh 0.6b attn 200     # decode attention, as committed
# The committed table is imported first, so each first bucket's study starts from its winner (an
# older kernel's config: storage.queue.warm_start_config). The database, gzipped, and the exported
# table go to $OUT; `merge` then joins the two parts.
. benchmarks/_session.sh
m=qwen3-$1; part=$2; secs=$3
db=/tmp/ks9_$1_$part.db
export KERNEL_SEARCH_DB=sqlite:///$db
python3 -m cli.app import $R/dispatch_${m}_H100.json | tail -1
if [ "$part" = gemm ]; then
  args=(--op rmsnorm_qkv --op o_proj_residual --op rmsnorm_gate_up_silu --op down_residual --op lm_head
        --buckets 1,2,4,8,16,32 --trials 20 --bench-batches 1,8,32)
else
  args=(--op decode_attention --buckets 1,8,32 --contexts 256,1024,4096,16384 --trials 16 --bench-batches 1,8,32)
fi
start=$(date +%s)
timeout $(( secs + 150 )) python3 -m cli.app tune --model $m "${args[@]}" --seconds $secs > "$OUT/tune_${m}_${part}.log" 2>&1
echo "tune rc=$? in $(( $(date +%s) - start )) s"
grep -v "━" "$OUT/tune_${m}_${part}.log" | grep -i "tuned\|ships\|faster\|speedup\|│ *[0-9]\|error" | tail -12 | cut -c1-160
# The imported table's fingerprint (the old kernel hashes) is in the database too: export this one's.
key=$(python3 -c "from kernel_space.fingerprint import current_fingerprint; from storage.store import fingerprint_key; print(fingerprint_key(current_fingerprint()))")
python3 -m cli.app export --model $m --gpu "$key" -o "$OUT/dispatch_${m}_${part}.json" 2>&1 | tail -2
gzip -c $db > "$OUT/tune_${m}_${part}.db.gz"
