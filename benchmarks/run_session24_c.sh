#!/usr/bin/env bash
# Twenty-fourth session (2026-11-28), one H200: decode attention's long-context splits, the most that run
# in two waves (the new rule) against the fewest whose last wave is full enough (the previous rule,
# KERNEL_SEARCH_ATTN_SPLITS=fewest), decode tok/s ABAB in one process (env_ab.py), committed GEMM
# tables; 8B's table without its decode_attention rows, so that the plan runs there too.
#   OUT=dir bash benchmarks/run_session24_c.sh
. benchmarks/_session.sh
ab() {  # MODEL TABLE CELLS SECONDS
  timeout "$4" python3 benchmarks/env_ab.py "$OUT/splits_$1.json" --model "$1" --table "$2" \
    --cells "$3" --env KERNEL_SEARCH_ATTN_SPLITS --values fewest,most --rounds 2 2>&1 | quiet \
    | grep -v "capture compiles\|untuned\|_check_table" | grep "round\|Error\|error" | cut -c1-160
}
python3 - <<'PY'
import json
t = json.load(open("benchmarks/results/dispatch_qwen3-8b_H100.json"))
t["ops"].pop("decode_attention", None)
json.dump(t, open("/tmp/dispatch_qwen3-8b_gemm.json", "w"))
PY
ab qwen3-0.6b "$R/dispatch_qwen3-0.6b_H100.json" 1x8192,1x16384,1x32768,2x8192,4x4096,8x2048,8x8192,16x4096,32x2048,32x8192 360
ab qwen3-8b /tmp/dispatch_qwen3-8b_gemm.json 1x8192,8x8192 200
