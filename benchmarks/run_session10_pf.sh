#!/usr/bin/env bash
# Tenth session (2026-11-27): decode attention's K/V prefetch before PDL's wait where whole chunks do
# not fit half of L2 (the runtime prefetches nothing there): the first tiles of each chunk that fit in
# 25% or 50% of L2 (attn_step_probe.py --kv-prefetch-head), against none, in the 0.6B decode step at
# batch 1 and 8 x 8k, the committed table's GEMMs.
#   OUT=dir bash benchmarks/run_session10_pf.sh
. benchmarks/_session.sh
T=$R/dispatch_qwen3-0.6b_H100.json
for arm in none h25 h50 none2; do
  extra=(); case $arm in h25) extra=(--kv-prefetch-head 0.25);; h50) extra=(--kv-prefetch-head 0.5);; esac
  echo "== $arm"
  timeout 110 python3 benchmarks/attn_step_probe.py "$OUT/pf_$arm.json" --model qwen3-0.6b --batches 1,8 \
    --context 8192 --table $T --gemm-table "${extra[@]}" 2>&1 | quiet | grep -i "batch\|error" | cut -c1-175
done
