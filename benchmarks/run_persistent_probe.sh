#!/usr/bin/env bash
# Issue 10, item 4: one cooperative launch for a decode step's GEMV chain (benchmarks/persistent_probe.py)
# beside today's one launch a GEMM, 0.6B then 8B, the committed tables' M = 1 configs. Written in the
# twelfth session, which had no device time left to run it.
#   OUT=dir bash benchmarks/run_persistent_probe.sh
. benchmarks/_session.sh
for m in 0.6b 8b; do
  timeout 280 python3 benchmarks/persistent_probe.py "$OUT/persistent_probe_qwen3-${m}.json" --model qwen3-$m \
    --table $R/dispatch_qwen3-${m}_H100.json --warps 4,8 --block-k 512 2>&1 | quiet | tail -12 | cut -c1-170
done
