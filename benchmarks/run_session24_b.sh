#!/usr/bin/env bash
# Twenty-fourth session (2026-11-28), one H200. (1) Split-K reduced by the last program against the
# reduce kernel, bit for bit (splitk_race_probe.py): every last_program GEMM row of the committed 0.6B,
# 1.7B and 8B tables at its M, 20 runs each, and the 128 x 128 rmsnorm_qkv grid (warps x stages x
# SPLIT_K) at M 128 / 256; the two in parallel (compiles dominate). The PTX of the refused config and of
# its 2-stage neighbour, as Triton builds them on the GPU. (2) kv=early past one block against the loop
# plan with more splits, in the 0.6B decode step (attn_step_probe.py, committed GEMM table).
#   OUT=dir bash benchmarks/run_session24_b.sh
. benchmarks/_session.sh
timeout 330 python3 -m benchmarks.splitk_race_probe --out "$OUT/race_tables.json" --repeats 20 \
  --tables $R/dispatch_qwen3-0.6b_H100.json $R/dispatch_qwen3-1.7b_H100.json $R/dispatch_qwen3-8b_H100.json \
  > "$OUT/race_tables.log" 2>&1 &
timeout 330 python3 -m benchmarks.splitk_race_probe --out "$OUT/race_grid.json" --grid --repeats 8 \
  > "$OUT/race_grid.log" 2>&1 &
TRITON_CACHE_DIR=/tmp/tc_ptx timeout 120 python3 - <<'PY' 2>&1 | quiet | tail -3
import torch, kernel_space as ks
from benchmarks.qkv_incorrect_probe import BASE
from qwen3.config import PRESETS
spec = ks.get_op("rmsnorm_qkv")
n, k = spec.shape(PRESETS["qwen3-0.6b"].dims())
inputs = spec.make_inputs(128, n, k, torch.bfloat16, "cuda", torch.Generator(device="cuda").manual_seed(0))
for stages in (3, 2):
    spec.fused(inputs, {**BASE, "num_stages": stages})
torch.cuda.synchronize()
print("built")
PY
outabs=$(cd "$OUT" && pwd)
(cd /tmp/tc_ptx && find . -name "fused_linear_kernel*.ptx" -o -name "fused_linear_kernel*.json" | tar czf "$outabs/ptx_refused.tgz" -T -)
wait
grep -c "differ 0/" "$OUT/race_tables.log"; grep -v "differ 0/" "$OUT/race_tables.log" | quiet | cut -c1-200
grep -v "differ 0/" "$OUT/race_grid.log" | quiet | cut -c1-200; grep -c "differ 0/" "$OUT/race_grid.log"
S64='"SPLITS": 64'
attn_probe rest2_qwen3-0.6b_ctx8192_b1 qwen3-0.6b 8192 1 "{$S64}" "{$S64, \"kv\": \"early\"}" "{$S64, \"kv\": \"early\", \"prep\": \"fused\"}" '{"kv": "early"}'
attn_probe rest2_qwen3-0.6b_ctx16384_b1 qwen3-0.6b 16384 1 "{$S64}" "{$S64, \"kv\": \"early\"}" "{$S64, \"kv\": \"early\", \"prep\": \"fused\"}" '{"kv": "early"}'
attn_probe rest2_qwen3-0.6b_ctx1024_b8 qwen3-0.6b 1024 8 '{"kv": "early"}' '{"kv": "early", "prep": "fused"}' '{"kv": "early", "SPLITS": 8}' '{"SPLITS": 8}'
attn_probe rest2_qwen3-0.6b_ctx8192_b8 qwen3-0.6b 8192 8 '{"kv": "early"}' '{"kv": "early", "SPLITS": 8}' '{"SPLITS": 8}'
attn_probe rest2_qwen3-0.6b_ctx256_b32 qwen3-0.6b 256 32 '{"kv": "early"}' '{"kv": "early", "prep": "fused"}' '{"kv": "early", "SPLITS": 2, "combine": "last_program"}'
