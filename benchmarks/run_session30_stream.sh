#!/usr/bin/env bash
# Thirtieth session (2026-11-29), one H200: the fixed-point stream's NaN through the GPU tests, then a new
# user's tune of Qwen3-0.6B's GEMM sites at batch 1 and 8 that ends in the step check, which now times the
# new table with its residual stream in the model dtype and in fixed point and ships the faster per batch;
# the table exported, and benched as a user would.
#   OUT=dir bash benchmarks/run_session30_stream.sh
source benchmarks/_session.sh
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/kernel_space/test_stream.py tests/qwen3/test_stream.py \
  tests/qwen3/test_gpu.py > "$OUT/gpu_tests.log" 2>&1; tail -3 "$OUT/gpu_tests.log"
MODEL=${MODEL:-qwen3-0.6b}
DB=sqlite:///$OUT/tune_$MODEL.db
timeout "${TUNE_S:-330}" python3 -m cli.app tune --model "$MODEL" --op rmsnorm_qkv --op o_proj_residual \
  --op rmsnorm_gate_up_silu --op down_residual --op lm_head --buckets 1,8 --trials "${TRIALS:-16}" --db "$DB" \
  > "$OUT/tune_$MODEL.log" 2>&1
grep -v "━\|Warning\|warn" "$OUT/tune_$MODEL.log" | tail -22 | cut -c1-200
python3 -m cli.app export --model "$MODEL" --db "$DB" -o "$OUT/dispatch_${MODEL}_H200.json" 2>&1 | tail -2
python3 - "$OUT/dispatch_${MODEL}_H200.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
print("stream:", t.get("stream"))
for b in t["step_check"]["batches"]:
    print(b)
PY
timeout 120 python3 -m cli.app bench --model "$MODEL" --table "$OUT/dispatch_${MODEL}_H200.json" --batch 1,8 \
  > "$OUT/bench_$MODEL.log" 2>&1; grep -v "━\|Warning\|warn" "$OUT/bench_$MODEL.log" | tail -8 | cut -c1-200
