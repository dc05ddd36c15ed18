#!/usr/bin/env bash
# Twenty-fourth session (2026-11-28), one H200. (1) The GPU tests of kv=early past one block (bf16).
# (2) Why rmsnorm_qkv's dot / 128 x 128 / 8 warps / split-K last-program configs fail the correctness check
# on the GPU (qkv_incorrect_probe.py: the refused config and its neighbours; then with the split-K reduce
# unrolled whole, in its own Triton cache). (3) kv=early past one block (the chunk's first block before
# PDL's wait, the rest after) in the 0.6B decode step at batch 1 x 8k and 16k (attn_step_probe.py,
# committed GEMM table).
#   OUT=dir bash benchmarks/run_session24_a.sh
. benchmarks/_session.sh
timeout 120 python3 -m pytest -q -p no:cacheprovider -x tests/kernel_space/test_decode_attention_prep.py \
  tests/kernel_space/test_decode_attention.py -k "early" 2>&1 | tail -3 | tee "$OUT/test_gpu_early_rest.log"
timeout 150 python3 -m benchmarks.qkv_incorrect_probe --out "$OUT/qkv_incorrect.json" --dtypes bfloat16 2>&1 \
  | quiet | cut -c1-200
TRITON_CACHE_DIR=/tmp/tc_unroll timeout 60 python3 -m benchmarks.qkv_incorrect_probe --out "$OUT/qkv_incorrect_unroll.json" \
  --dtypes bfloat16 --ms 128 --first 3 --unroll 262144 2>&1 | quiet | cut -c1-200
E='"kv": "early", "prep": "fused"'
attn_probe rest_qwen3-0.6b_ctx8192 qwen3-0.6b 8192 1 "{$E}" "{$E, \"SPLITS\": 64}" "{$E, \"SPLITS\": 64, \"BLOCK_N\": 128, \"num_warps\": 8, \"num_stages\": 1}" \
  "{$E, \"num_stages\": 1}" '{"kv": "early"}'
attn_probe rest_qwen3-0.6b_ctx16384 qwen3-0.6b 16384 1 "{$E}" "{$E, \"SPLITS\": 64}"
