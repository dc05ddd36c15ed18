#!/usr/bin/env bash
# Tenth session (2026-11-27): re-tune the M = 32 buckets of a preset's five GEMM sites now that the
# space offers a 64-row dot tile (Hopper's wgmma) at 16 < M < 64. The kernels did not change, so the
# committed table is imported first: every other bucket stays as it is, and each M = 32 study measures
# the committed config first (tuner.search: a study's imported winner is seeded). The tune's step
# check at batch 32 compares the new table with the committed one in the same process.
#   OUT=dir bash benchmarks/run_session10_tune.sh 8b 150
. benchmarks/_session.sh
m=qwen3-$1; secs=$2
db=/tmp/ks10_$1.db
export KERNEL_SEARCH_DB=sqlite:///$db
python3 -m cli.app import $R/dispatch_${m}_H100.json | tail -1
start=$(date +%s)
timeout $(( secs + 150 )) python3 -m cli.app tune --model $m --op rmsnorm_qkv --op o_proj_residual \
  --op rmsnorm_gate_up_silu --op down_residual --op lm_head --buckets 32 --trials 24 --bench-batches 32 \
  --seconds $secs > "$OUT/tune_${m}.log" 2>&1
echo "tune rc=$? in $(( $(date +%s) - start )) s"
grep -v "━" "$OUT/tune_${m}.log" | grep -i "tuned\|ships\|faster\|speedup\|│ *[0-9]\|error\|M=32\|^ *[0-9]" | tail -16 | cut -c1-170
key=$(python3 -c "from kernel_space.fingerprint import current_fingerprint; from storage.store import fingerprint_key; print(fingerprint_key(current_fingerprint()))")
python3 -m cli.app export --model $m --gpu "$key" -o "$OUT/dispatch_${m}.json" 2>&1 | tail -2
gzip -c $db > "$OUT/tune_${m}.db.gz"
