#!/usr/bin/env bash
# Ninth session (2026-11-27), first nvidia-h100-x1 call. Decode attention now combines its splits in
# one read (not one L2 round trip a split) and prefetches its K/V chunk into L2 before PDL's wait.
# attn_step_probe times attention configs alone and in the 0.6B decode step, the GEMM sites on the
# committed table's configs, with this tree's kernels and with the previous commit's (BEFORE: a copy
# of its kernel_space, qwen3, ... carried beside this tree). Then the attention tests on the GPU (bf16).
#   OUT=dir BEFORE=dir bash benchmarks/run_session9_x1.sh
. benchmarks/_session.sh
T=$R/dispatch_qwen3-0.6b_H100.json
HERE=$PWD
SHORT=('{"prep": "fused", "combine": "last_program"}' '{"SPLITS": 1, "prep": "fused"}'
       '{"SPLITS": 2, "prep": "fused", "combine": "last_program"}')
LONG=('{"prep": "fused", "combine": "last_program"}' '{"SPLITS": 16, "prep": "fused", "combine": "last_program"}'
      '{"SPLITS": 64, "prep": "fused", "combine": "last_program"}')
probe() {  # tree tag context batches configs...
  local tree=$1 tag=$2 ctx=$3 batches=$4; shift 4
  local cfgs=(); for c in "$@"; do cfgs+=(--config "$c"); done
  echo "== $tag, context $ctx"
  (cd "$tree" && PYTHONPATH=/tmp/site:$tree timeout 280 python3 benchmarks/attn_step_probe.py \
     "$OUT/probe_${tag}_${ctx}.json" --model qwen3-0.6b --batches "$batches" --context "$ctx" --table "$T" --gemm-table \
     "${cfgs[@]}" 2>&1 | quiet | grep -i "batch\|error\|Traceback" | cut -c1-200)
}
probe "$HERE" after 256 1 "${SHORT[@]}"
probe "${BEFORE:?}" before 256 1 "${SHORT[@]}"
probe "$HERE" after 8192 1,8 "${LONG[@]}"
probe "$BEFORE" before 8192 1,8 "${LONG[@]}"
timeout 200 python3 -m pytest -q -p no:cacheprovider --tb=short -x tests/kernel_space/test_decode_attention.py \
  tests/kernel_space/test_decode_attention_prep.py -k "bfloat16 or several or bf16" > "$OUT/test_attn_gpu.log" 2>&1
tail -3 "$OUT/test_attn_gpu.log"
