#!/usr/bin/env bash
# Twenty-ninth session (2026-11-29), one H200: the fp32 residual stream (KERNEL_SEARCH_STREAM=fp32: o_proj
# and down add into it in place, each split with an atomic) against the bf16 one, committed tables:
# logits against the same weights in fp32 (stream_parity.py), then decode tok/s ABAB (env_ab.py). The
# tables are restamped into /tmp first (restamp_table.py): this tree's GEMM hashes changed with the
# ACCUMULATE variant, whose default builds the previous kernels (a table with stale hashes runs unfused).
#   OUT=dir bash benchmarks/run_session29_stream.sh
source benchmarks/_session.sh
T=/tmp/restamped
mkdir -p $T
for m in qwen3-0.6b qwen3-1.7b qwen3-8b; do python3 benchmarks/restamp_table.py $R/dispatch_${m}_H100.json $T/dispatch_${m}_H100.json; done
parity() {  # parity NAME MODEL BATCHES PROMPT
  timeout 240 python3 benchmarks/stream_parity.py "$OUT/parity_$1.json" --model "$2" --table "$T/dispatch_$2_H100.json" \
    --batches "$3" --prompt "$4" 2>&1 | quiet | grep -v "capture compiles\|untuned\|_check_table" \
    | grep "batch\|Error\|error" | cut -c1-160
}
parity 0.6b qwen3-0.6b 1,8 200
parity 0.6b_2k qwen3-0.6b 1 2000
env_ab_cells stream_qwen3-0.6b qwen3-0.6b $T/dispatch_qwen3-0.6b_H100.json 1x256,8x256,32x256,1x2048,8x2048 150 \
  KERNEL_SEARCH_STREAM model,fp32
env_ab_cells stream_qwen3-1.7b qwen3-1.7b $T/dispatch_qwen3-1.7b_H100.json 1x256,8x256 90 KERNEL_SEARCH_STREAM model,fp32
env_ab_cells stream_qwen3-8b qwen3-8b $T/dispatch_qwen3-8b_H100.json 1x256,8x256,32x256 150 KERNEL_SEARCH_STREAM model,fp32
[ -n "${SKIP_8B_PARITY:-}" ] || parity 8b qwen3-8b 1 200
