#!/usr/bin/env bash
# Seventh session (2026-11-26), fourth nvidia-h100-x1 call: the unfused step's first-cell effect at
# batch 1 (order_probe.py), without and with PyTorch's cuBLAS workspaces dropped before every cell;
# then the merged 0.6B table (tuned decode attention at batch 1, 8, 32) against the committed one,
# batch 1 and 8 at context 256, 2k and 8k, one more round.
#   OUT=dir bash benchmarks/run_session7_x1d.sh
. benchmarks/_session.sh
for flag in "" --clear-cublas; do
  timeout 80 python3 benchmarks/order_probe.py --model qwen3-0.6b $flag --out "$OUT/order_probe${flag:+_clear}_H100_$day.json" 2>&1 \
    | quiet | grep "'batch': 1"
done
m=qwen3-0.6b; work=$(mktemp -d)
e2e() { timeout 120 python3 benchmarks/e2e_matrix.py --models $m --batches 1,8 --contexts 256,2048,8192 --arms table "$@" 2>&1 | quiet | grep tok/s; }
e2e --table "$m=$R/dispatch_${m}_H100.json" --out "$work/old_3.json"
e2e --table "$m=$R/attention_s7_H100_2026-11-26/2_merged_qwen3-0.6b.json" --out "$work/new_3.json"
python3 benchmarks/e2e_rounds.py "$work" "$OUT/e2e_attn7b_round3_${m}_H100_$day.json" table_attn7b
