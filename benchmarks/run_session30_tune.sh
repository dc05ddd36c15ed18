#!/usr/bin/env bash
# Thirtieth session: a new user's tune of MODEL's GEMM sites (default qwen3-0.6b) at batch 1 and 8 that
# ends in the step check (the new table timed with its stream in the model dtype and in fixed point),
# then export and `bench` with the exported table. MODEL, TRIALS (16), TUNE_S (330) from the environment.
# The thirty-first session's run (its check also timed the fold at batch 1) printed the table's "fold" too.
#   OUT=dir MODEL=qwen3-1.7b bash benchmarks/run_session30_tune.sh
source benchmarks/_session.sh
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
print("stream:", t.get("stream"), "fold:", t.get("fold"))
for b in t["step_check"]["batches"]:
    print(b)
PY
timeout 120 python3 -m cli.app bench --model "$MODEL" --table "$OUT/dispatch_${MODEL}_H200.json" --batch 1,8 \
  > "$OUT/bench_$MODEL.log" 2>&1; grep -v "━\|Warning\|warn" "$OUT/bench_$MODEL.log" | tail -8 | cut -c1-200
