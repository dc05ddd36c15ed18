#!/usr/bin/env bash
# Tenth session (2026-11-27): the 8B table with the re-tuned M = 32 rows (gate_up and lm_head now a
# 64-row wgmma tile) against the table before, `bench` at batch 32 x 256, ABAB; then the matrix cell
# 8B batch 32 x 256, table beside torch.compile.
#   OUT=dir bash benchmarks/run_session10_x1d.sh
. benchmarks/_session.sh
OLD=$R/session10_H100_2026-11-27/dispatch_qwen3-8b_before.json; NEW=$R/dispatch_qwen3-8b_H100.json
bench() {  # table tag
  echo "== $2"
  timeout 150 python3 -m cli.app bench --model qwen3-8b --batch 32 --context 256 --output-len 128 --table $1 \
    --repeats 5 --json $OUT/bench_8b_b32_$2.json 2>&1 | quiet | grep "│ *[0-9]" | cut -c1-150
}
bench $OLD before_1; bench $NEW after_1; bench $OLD before_2; bench $NEW after_2
timeout 330 python3 benchmarks/e2e_matrix.py --table qwen3-8b=$NEW --models qwen3-8b --contexts 256 --batches 32 \
  --arms table,torch_compile --out "$OUT/e2e_matrix_8b_b32.json" 2>&1 | quiet | grep -i "tok/s\|ratio\|table /\|error" | cut -c1-160
