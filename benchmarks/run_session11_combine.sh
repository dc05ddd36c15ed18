#!/usr/bin/env bash
# Eleventh session (2026-11-27): decode attention's combine kernel is now a program per (head,
# sequence, 32 head_dim values), every split read at once, and the plan combines by it from 16 splits
# on. The attention tests on the GPU (bf16), then attn_step_probe: the plan (kernel combine at batch 1,
# last program at batch 8) and the plan with the other combine, alone and in the decode step, GEMM
# sites on the committed tables.
#   OUT=dir bash benchmarks/run_session11_combine.sh
. benchmarks/_session.sh
timeout 150 python3 -m pytest -q -p no:cacheprovider --tb=short -x tests/kernel_space/test_decode_attention.py \
  tests/kernel_space/test_decode_attention_prep.py -k "bfloat16 or several or bf16 or most_splits" > "$OUT/test_attn_gpu.log" 2>&1
tail -2 "$OUT/test_attn_gpu.log"
probe() {  # model batches context
  echo "== $1, batches $2, context $3"
  timeout 200 python3 benchmarks/attn_step_probe.py "$OUT/probe_$1_$3.json" --model "qwen3-$1" --batches "$2" \
    --context "$3" --table "$R/dispatch_qwen3-$1_H100.json" --gemm-table 2>&1 | quiet | grep -i "batch\|error\|Traceback" \
    | cut -c1-200
}
probe 0.6b 1,8 8192
probe 8b 1 8192
probe 0.6b 1 2048
