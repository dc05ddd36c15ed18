#!/usr/bin/env bash
# Eighteenth session (2026-11-27), nvidia-h100-x1: the matrix cells of issues 10 and 13 with the tables
# re-tuned on the folded norm kernels, beside torch.compile (whose model shares the folded weights and
# runs unit norm gains: the same products and work).
# PART=1: Qwen3-0.6B at batch 1 and 32 x 256 and 2k (the 2k cells were cut by the timeout: each
# torch.compile cell took ~150 s), and Qwen3-1.7B at batch 1 x 256 (unfused too);
# PART=2: Qwen3-8B at batch 1 and 32 x 256; PART=3: Qwen3-0.6B at batch 32 x 2k.
#   OUT=dir PART=1 bash benchmarks/run_session18_matrix.sh
. benchmarks/_session.sh
matrix() {  # MODEL BATCHES CONTEXTS ARMS SECONDS NAME
  timeout $5 python3 benchmarks/e2e_matrix.py --models $1 --batches $2 --contexts $3 --arms $4 \
    --table $1=$R/dispatch_$1_H100.json --out "$OUT/e2e_matrix_$6_H100_${day}.json" 2>&1 | quiet | tail -12
  python3 benchmarks/e2e_matrix.py --render "$OUT/e2e_matrix_$6_H100_${day}.json" 2>&1 | tail -8
}
if [ "${PART:-1}" = 1 ]; then
  matrix qwen3-0.6b 1,32 256,2048 table,torch_compile 330 0.6b
  matrix qwen3-1.7b 1 256 unfused,table,torch_compile 180 1.7b
elif [ "$PART" = 2 ]; then
  matrix qwen3-8b 1,32 256 table,torch_compile 480 8b
else
  matrix qwen3-0.6b 32 2048 table,torch_compile 300 0.6b_2k
fi
