#!/usr/bin/env bash
# Twenty-seventh session (2026-11-28), one H200: a new user on models no table was tuned for. Qwen3-4B
# (36 layers, 32 q heads over 8 KV heads), 14B (40 over 8: a GQA group of 5, not a power of two) and
# 32B (64 over 8), random weights:
#   1. `check`: every fused op (decode attention too) against its fp64 reference at the model's shapes;
#   2. a short tune of 4B (M 1 and 8, contexts 256 and 8k), its table exported;
#   3. that table's logits against the unfused path's (table_parity.py), and the 4B matrix cells with
#      the table, unfused and the torch.compile peer (a decode-only table at an 8k x 8 prefill too).
#   4. (a second call) the 4B matrix's last peer cell and 14B's decode step with no table.
#   OUT=dir [STEPS="1 2 3"] bash benchmarks/run_session27_models.sh
. benchmarks/_session.sh
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-/tmp/triton-s27}
STEPS=${STEPS:-"1 2 3"}
DB="sqlite:///$OUT/tune_qwen3-4b.db"
TABLE="$OUT/dispatch_qwen3-4b_H200.json"
KS="python3 -m cli.app"
for step in $STEPS; do
  case $step in
    1)
      for model in qwen3-14b qwen3-4b; do
        echo "== check $model"
        timeout 240 $KS check --model "$model" --ms 1,8,32 > "$OUT/check_$model.txt" 2>&1
        echo "rc $?"; quiet < "$OUT/check_$model.txt" | tail -30 | cut -c1-200
      done
      echo "== check qwen3-32b decode_attention"
      timeout 120 $KS check --model qwen3-32b --op decode_attention --ms 1,8,32 > "$OUT/check_qwen3-32b.txt" 2>&1
      echo "rc $?"; quiet < "$OUT/check_qwen3-32b.txt" | tail -12 | cut -c1-200
      ;;
    2)
      echo "== tune qwen3-4b"
      t0=$(date +%s)
      timeout 300 $KS tune --model qwen3-4b --buckets 1,8 --contexts 256,8192 --trials 16 --bench-batches 1,8 \
        --db "$DB" > "$OUT/tune_qwen3-4b.log" 2>&1
      echo "rc $? in $(( $(date +%s) - t0 )) s"; quiet < "$OUT/tune_qwen3-4b.log" | tail -30 | cut -c1-200
      $KS export --model qwen3-4b --db "$DB" -o "$TABLE" 2>&1 | tail -3
      ;;
    3)
      echo "== parity qwen3-4b"
      timeout 150 python3 benchmarks/table_parity.py --model qwen3-4b --table "$TABLE" --batches 1,8 --prompt 2000 \
        --json "$OUT/parity_qwen3-4b.json" 2>&1 | quiet | tail -8 | cut -c1-200
      echo "== matrix qwen3-4b"
      timeout 420 python3 benchmarks/e2e_matrix.py --models qwen3-4b --batches 1,8 --contexts 256,8192 \
        --arms unfused,table,torch_compile --table "qwen3-4b=$TABLE" --out "$OUT/e2e_matrix_qwen3-4b.json" --fresh \
        --peer-no-coordinate-descent 2>&1 | quiet | grep -v "capture compiles" | tail -25 | cut -c1-200
      ;;
    4)
      # (a second call) the 4B matrix's last peer cell (batch 8 x 8k), continuing step 3's file, and
      # 14B's decode step with no table (the GEMMs unfused, decode attention's default plan at a GQA
      # group of 5).
      echo "== matrix qwen3-4b, batch 8 x 8k peer"
      timeout 300 python3 benchmarks/e2e_matrix.py --models qwen3-4b --batches 8 --contexts 8192 --arms torch_compile \
        --out "$OUT/e2e_matrix_qwen3-4b.json" --peer-no-coordinate-descent 2>&1 | quiet | grep -v "capture compiles" \
        | tail -6 | cut -c1-200
      echo "== bench qwen3-14b, no table"
      timeout 200 $KS bench --model qwen3-14b --batch 1,8 --context 256,8192 --output-len 32 \
        --json "$OUT/bench_qwen3-14b.json" 2>&1 | quiet | tail -12 | cut -c1-200
      ;;
  esac
done
