#!/usr/bin/env bash
# Thirtieth session (2026-11-29), one H200, second call: the stream tests again (the NaN test's mask was
# on the CPU), the committed 0.6B table's default stream against the model dtype after the NaN change
# (the twenty-ninth session measured +5.1% at batch 1), and Qwen3-1.7B's GEMM sites tuned at batch 1 and 8
# with the step check choosing the stream.
#   OUT=dir bash benchmarks/run_session30_b.sh
source benchmarks/_session.sh
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/kernel_space/test_stream.py > "$OUT/gpu_tests_stream.log" 2>&1
tail -2 "$OUT/gpu_tests_stream.log"
env_ab_cells default_qwen3-0.6b qwen3-0.6b $R/dispatch_qwen3-0.6b_H100.json 1x256,8x256 100 KERNEL_SEARCH_STREAM auto,model
OUT=$OUT MODEL=qwen3-1.7b TRIALS=12 TUNE_S=300 bash benchmarks/run_session30_tune.sh
