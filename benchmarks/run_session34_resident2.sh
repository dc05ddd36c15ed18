#!/usr/bin/env bash
# Thirty-fourth session, second call: resident_probe.py's 0.6B GEMV chain at 16 warps with the loop's
# offsets opaque (as in the first call) and left to the compiler, and each stage a launch.
#   OUT=dir bash benchmarks/run_session34_resident2.sh
# As run: --preload on/off (all tiles or none; now masks 31 and 0).
source benchmarks/_session.sh
T=$R/dispatch_qwen3-0.6b_H100.json
for o in 1 0; do
  KERNEL_SEARCH_RESIDENT_OPAQUE=$o timeout 200 python3 benchmarks/resident_probe.py "$OUT/resident_chain_opaque$o.json" \
    --table "$T" --warps 16 2>&1 | quiet | grep -v "capture compiles\|untuned" | cut -c1-200
done
