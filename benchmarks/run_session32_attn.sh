#!/usr/bin/env bash
# Thirty-second session (2026-11-29), one H200: decode attention at batch 1 x 8k-32k when its combine is
# folded into o_proj (issue 13's 80% of the copy bandwidth at >= 8k): attn_bench.py's `partials` arms
# (the launch alone, no combine) beside the plan, then the 0.6B step with the fold forced on at other
# split counts (attn_step_probe.py, KERNEL_SEARCH_FOLD=on, committed GEMM tables).
#   OUT=dir bash benchmarks/run_session32_attn.sh
source benchmarks/_session.sh
bench() {  # NAME MODEL CONTEXTS SECONDS
  timeout "$4" python3 benchmarks/attn_bench.py "$OUT/$1.json" --models "$2" --batches 1 --contexts "$3" --random 0 \
    2>&1 | quiet | cut -c1-400
}
bench attn_b1_06b qwen3-0.6b 8192,16384,32768 240
bench attn_b1_8b qwen3-8b 8192 100
S='{"SPLITS": '
KERNEL_SEARCH_FOLD=on attn_probe fold_splits_06b_8k qwen3-0.6b 8192 1 "${S}16}" "${S}24}" "${S}48}" "${S}64}"
