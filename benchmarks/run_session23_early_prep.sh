#!/usr/bin/env bash
# Twenty-third session (2026-11-28), one H200: decode attention with kv=early and prep=fused (the q/k
# norm, RoPE and cache write in the attention kernel, the old K/V loaded before PDL's wait) against the
# plan (kv=early, prep separate) and the loop plans, alone and in the decode step (attn_step_probe.py,
# the committed GEMM tables); the plan measured again last ('{}'). First the GPU tests of the kernels.
#   OUT=dir bash benchmarks/run_session23_early_prep.sh
. benchmarks/_session.sh
timeout 150 python3 -m pytest -q -p no:cacheprovider -x tests/kernel_space/test_decode_attention_prep.py \
  tests/kernel_space/test_decode_attention.py -k "early or edges or outside" 2>&1 | tail -3 | tee "$OUT/test_gpu_early_prep.log"
probe() {  # MODEL TABLE CONTEXT BATCHES
  timeout 200 python3 benchmarks/attn_step_probe.py "$OUT/early_prep_$1_ctx$3.json" --model "$1" --batches "$4" \
    --context "$3" --table "$R/$2" --gemm-table --config '{}' 2>&1 \
    | quiet | grep -v "capture compiles\|untuned\|_check_table" | grep "^batch\|Error\|error" | cut -c1-230
}
probe qwen3-0.6b dispatch_qwen3-0.6b_H100.json 256 1,2,4,8
probe qwen3-0.6b dispatch_qwen3-0.6b_H100.json 900 1
probe qwen3-1.7b dispatch_qwen3-1.7b_H100.json 256 1,2
probe qwen3-8b dispatch_qwen3-8b_H100.json 256 1
