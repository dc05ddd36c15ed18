#!/usr/bin/env bash
# Ninth session (2026-11-27): the end-to-end matrix with the re-tuned tables (this tree's kernels),
# the table arm beside the torch.compile peer, one model a call (each cell compiles the peer anew).
#   OUT=dir bash benchmarks/run_session9_matrix.sh qwen3-0.6b 256,2048,8192 1,8,32
. benchmarks/_session.sh
m=$1; ctx=$2; batches=$3
T="--table qwen3-0.6b=$R/dispatch_qwen3-0.6b_H100.json --table qwen3-8b=$R/dispatch_qwen3-8b_H100.json"
timeout 560 python3 benchmarks/e2e_matrix.py $T --models $m --contexts $ctx --batches $batches \
  --arms table,torch_compile --out "$OUT/e2e_matrix_${m}_H100_$day.json" 2>&1 | quiet | grep -i "tok/s\|ratio\|table /\|error" | cut -c1-160
python3 benchmarks/e2e_matrix.py --render "$OUT/e2e_matrix_${m}_H100_$day.json" 2>&1 | tail -15
