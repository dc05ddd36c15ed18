#!/usr/bin/env bash
# Tune a Qwen3 preset on the GPU machine and write its table, queries and database to $OUT.
#   bash benchmarks/run_tune.sh 0.6b decode 30 380      # preset suffix, buckets, trials, seconds
# Re-running tops the same database up (KERNEL_SEARCH_DB, default /tmp/ks_<preset>.db).
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
model=qwen3-$1
db=/tmp/ks_$1.db
export KERNEL_SEARCH_DB=${KERNEL_SEARCH_DB:-sqlite:///$db}
start=$(date +%s)
python3 -m cli.app tune --model "$model" --buckets "$2" --trials "$3" --seconds "$4" > "$OUT/tune_${model}_H100.log" 2>&1
echo "tune rc=$? in $(( $(date +%s) - start )) s"; tail -8 "$OUT/tune_${model}_H100.log"
python3 -m cli.app export --model "$model" -o "$OUT/dispatch_${model}_H100.json"
python3 -m cli.app query --model "$model" --beats-cublas > "$OUT/beats_cublas_${model}_H100.txt"
python3 -m cli.app query --model "$model" --beats-cublas -f json > "$OUT/beats_cublas_${model}_H100.json"
python3 -m cli.app show --model "$model" > "$OUT/show_${model}_H100.txt"
gzip -c "$db" > "$OUT/tune_${model}_H100.db.gz"
