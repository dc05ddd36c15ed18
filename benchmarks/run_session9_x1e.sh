#!/usr/bin/env bash
# Ninth session (2026-11-27): decode attention's K/V prefetch before PDL's wait, on and off
# (KERNEL_SEARCH_KV_PREFETCH), in the 0.6B decode step with the re-tuned GEMM table: attn_step_probe
# at 256 slots (batch 1, 8, 32) and 8k (batch 1, 8).
#   OUT=dir bash benchmarks/run_session9_x1e.sh
. benchmarks/_session.sh
T=$R/session9_H100_2026-11-27/dispatch_qwen3-0.6b_gemm.json
for pf in 1 0; do
  for ctx in 256 8192; do
    b=1,8,32; [ $ctx = 8192 ] && b=1,8
    echo "== prefetch $pf, context $ctx"
    KERNEL_SEARCH_KV_PREFETCH=$pf timeout 250 python3 benchmarks/attn_step_probe.py "$OUT/probe_pf${pf}_$ctx.json" \
      --model qwen3-0.6b --batches $b --context $ctx --table $T --gemm-table \
      --config '{"prep": "fused", "combine": "last_program"}' 2>&1 | quiet | grep -i "batch\|error" | cut -c1-175
  done
done
