#!/usr/bin/env bash
# Eighteenth session (2026-11-27), nvidia-h100-x1: the norm gains folded into the weights (issue 10).
# PART=1: Qwen3-0.6B and 1.7B; PART=2: Qwen3-8B.
# 1. the model's two norm sites re-tuned on the folded kernels (the `rescan` prologue in the
#    space), 40 configs a study, over the committed table restamped to this tree (its other sites'
#    configs compile to the same PTX here); the tune's step check runs the new table beside it;
# 2. fold_ab.py: the decode step unfolded with the restamped table against folded with the new one.
#   OUT=dir PART=1 bash benchmarks/run_session18_tune.sh
. benchmarks/_session.sh
key=$(python3 -c "from kernel_space.fingerprint import current_fingerprint; from storage.store import fingerprint_key; print(fingerprint_key(current_fingerprint()))")
tune_norm() {  # MODEL BUCKETS TABLE SECONDS
  local m=$1 buckets=$2 table=$3 secs=$4
  local db=/tmp/ks18_${m}.db
  rm -f $db
  export KERNEL_SEARCH_DB=sqlite:///$db
  python3 benchmarks/restamp_table.py $table /tmp/prev_${m}.json | tail -1
  python3 -m cli.app import /tmp/prev_${m}.json | tail -1
  local start=$(date +%s)
  timeout $secs python3 -m cli.app tune --model $m --op rmsnorm_qkv --op rmsnorm_gate_up_silu --buckets $buckets \
    --trials 40 > "$OUT/tune_${m}_folded.log" 2>&1
  echo "$m tune rc=$? in $(( $(date +%s) - start )) s"
  grep -v "━" "$OUT/tune_${m}_folded.log" | quiet | grep -v "capture compiles\|^decode attention" | tail -20 | cut -c1-170
  python3 -m cli.app export --model $m --gpu "$key" -o "$OUT/dispatch_${m}_H100.json" 2>&1 | tail -2
  gzip -c $db > "$OUT/tune_${m}_folded.db.gz"
}
if [ "${PART:-1}" = 1 ]; then
  tune_norm qwen3-0.6b 1,2,4,8,16,32 $R/dispatch_qwen3-0.6b_H100.json 200
  tune_norm qwen3-1.7b 1,8 $R/session17_H100_2026-11-27/dispatch_qwen3-1.7b_H100.json 120
  timeout 120 python3 benchmarks/fold_ab.py "$OUT/fold_ab_0.6b.json" --model qwen3-0.6b \
    --unfolded-table /tmp/prev_qwen3-0.6b.json --folded-table "$OUT/dispatch_qwen3-0.6b_H100.json" 2>&1 | quiet | tail -4
  timeout 100 python3 benchmarks/fold_ab.py "$OUT/fold_ab_1.7b.json" --model qwen3-1.7b --cells 1x256,8x256 \
    --unfolded-table /tmp/prev_qwen3-1.7b.json --folded-table "$OUT/dispatch_qwen3-1.7b_H100.json" 2>&1 | quiet | tail -3
else
  tune_norm qwen3-8b 1,2,4,8,16,32 $R/dispatch_qwen3-8b_H100.json 330
  timeout 200 python3 benchmarks/fold_ab.py "$OUT/fold_ab_8b.json" --model qwen3-8b --cells 1x256,8x256,32x256 \
    --rounds 2 --unfolded-table /tmp/prev_qwen3-8b.json --folded-table "$OUT/dispatch_qwen3-8b_H100.json" 2>&1 \
    | quiet | tail -4
fi
