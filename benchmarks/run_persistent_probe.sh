#!/usr/bin/env bash
# Issue 10, item 4: one cooperative launch for a decode step (benchmarks/persistent_probe.py) beside today's
# one launch a kernel: the GEMV chain, then whole layers with attention at 256 slots; 0.6B, then 8B; the
# committed tables' M = 1 configs. Written in the twelfth session, which had no device time left to run
# it. The smoke run goes first under a short timeout: a grid barrier that never opened would otherwise
# hold the GPU until the call's limit. Every run writes its file after each row.
#   OUT=dir bash benchmarks/run_persistent_probe.sh
. benchmarks/_session.sh
timeout 90 python3 benchmarks/persistent_probe.py /dev/null --smoke > "$OUT/smoke.log" 2>&1
rc=$?
quiet < "$OUT/smoke.log" | tail -4
if [ $rc -ne 0 ]; then echo "smoke run failed or hung (rc=$rc): no sweep"; exit 1; fi
for m in 0.6b 8b; do
  for mode in chain layer; do
    extra=(); [ $mode = layer ] && extra=(--layer --context 256)
    echo "== qwen3-$m $mode"
    timeout 120 python3 benchmarks/persistent_probe.py "$OUT/persistent_${mode}_qwen3-${m}.json" --model qwen3-$m \
      --table $R/dispatch_qwen3-${m}_H100.json --warps 4,8 --block-k 512 "${extra[@]}" 2>&1 | quiet | tail -10 \
      | cut -c1-170
  done
done
