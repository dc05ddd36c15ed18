#!/usr/bin/env bash
# Eighteenth session (2026-11-27), nvidia-h100-x1, branch session18-fused-argmax: greedy decoding with
# the argmax in lm_head's epilogue. The GPU tests of the greedy path first (the in-graph argmax against
# the logits' argmax, now through the fused graph where lm_head is fused), then argmax_probe.py at 0.6B
# and 8B against the argmax of the logits inside the same graph.
#   OUT=dir bash benchmarks/run_session18_argmax.sh
. benchmarks/_session.sh
timeout 200 python3 -m pytest -q -p no:cacheprovider --tb=short tests/qwen3/test_gpu.py \
  "tests/kernel_space/test_ops.py::test_lm_head_argmax_is_the_argmax_of_the_logits" \
  > "$OUT/test_gpu_argmax_H100_$day.log" 2>&1
grep -i "passed\|failed\|error" "$OUT/test_gpu_argmax_H100_$day.log" | tail -6 | cut -c1-200
timeout 150 python3 benchmarks/argmax_probe.py "$OUT/argmax_probe_0.6b.json" --model qwen3-0.6b \
  --table $R/dispatch_qwen3-0.6b_H100.json 2>&1 | quiet | tail -3
timeout 200 python3 benchmarks/argmax_probe.py "$OUT/argmax_probe_8b.json" --model qwen3-8b --cells 1x256,32x256 \
  --rounds 2 --table $R/dispatch_qwen3-8b_H100.json 2>&1 | quiet | tail -2
