#!/usr/bin/env bash
# Tenth session (2026-11-27): the fixed bad-input test of decode attention on the GPU; then the 8B
# matrix cells last measured on older kernels (batch 8 x 256: 89% of the floor, batch 1 x 8k: 88%),
# table beside torch.compile, with the committed table.
#   OUT=dir bash benchmarks/run_session10_matrix2.sh
. benchmarks/_session.sh
timeout 100 python3 -m pytest -q -p no:cacheprovider --tb=short tests/kernel_space/test_decode_attention.py -k refuses 2>&1 | tail -1
T="--table qwen3-8b=$R/dispatch_qwen3-8b_H100.json"
for cell in "256 8" "8192 1"; do
  set -- $cell
  timeout 250 python3 benchmarks/e2e_matrix.py $T --models qwen3-8b --contexts $1 --batches $2 \
    --arms table,torch_compile --out "$OUT/e2e_matrix_qwen3-8b_b$2_$1.json" 2>&1 | quiet | grep -i "tok/s\|table /\|error" | cut -c1-160
done
