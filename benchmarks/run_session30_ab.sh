#!/usr/bin/env bash
# Thirtieth session (2026-11-29), one H200: `bench` with the committed 0.6B table (default stream: fixed
# point at batch 1) in the tree before the fixed-point stream's NaN (_ab/, commit ae5369b, carried) and in
# this one, alternating processes, two rounds: what the NaN handling costs the decode step.
#   OUT=dir [TESTS=1] bash benchmarks/run_session30_ab.sh      (with _ab/ holding the earlier tree; TESTS:
#   the stream tests first)
source benchmarks/_session.sh
[ -f _ab/cli/app.py ] || { echo "no earlier tree in _ab/"; exit 1; }
if [ -n "${TESTS:-}" ]; then
  timeout 120 python3 -m pytest -q -p no:cacheprovider tests/kernel_space/test_stream.py > "$OUT/gpu_tests_stream.log" 2>&1
  tail -1 "$OUT/gpu_tests_stream.log"
fi
# TREES: name:folder pairs to alternate (default the earlier tree and this one); each folder holds a tree
# with its own copy of the committed table.
for r in 1 2; do
  for pair in ${TREES:-before:_ab after:.}; do
    tree=${pair%%:*}; T=$PWD/${pair#*:}
    (cd "$T" && PYTHONPATH=/tmp/site:$T timeout 150 python3 -m cli.app bench --model qwen3-0.6b \
      --table benchmarks/results/dispatch_qwen3-0.6b_H100.json --batch 1,8 --context 256 --output-len 128 \
      --json "$OUT/ab_${tree}_$r.json" > "$OUT/ab_${tree}_$r.log" 2>&1)
    echo "round $r $tree: $(grep '│' "$OUT/ab_${tree}_$r.log" | awk -F'│' '{print $2 $7}' | tr -s ' ' | tr '\n' ';')"
  done
done
