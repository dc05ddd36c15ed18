#!/usr/bin/env bash
# Eighteenth session (2026-11-27), nvidia-h100-x1: the RMSNorm gain folded into the weight (issue 10).
# fold_probe.py: the norm sites' configs with the gain in the K loop against the same configs on a
# folded weight (and, for inline K loops, the sum of squares from a second read after the loop), at
# Qwen3-0.6B, 1.7B and 8B shapes, each checked against the fp64 reference first.
#   OUT=dir bash benchmarks/run_session18_fold.sh
. benchmarks/_session.sh
start=$(date +%s)
timeout 400 python3 benchmarks/fold_probe.py "$OUT/fold_probe.json" 2>&1 | quiet
echo "probe rc=${PIPESTATUS[0]} in $(( $(date +%s) - start )) s"
