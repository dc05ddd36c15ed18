#!/usr/bin/env bash
# Seventeenth session (2026-11-27), nvidia-h100-x1: Qwen3-1.7B as a new user meets it (no table of it
# existed): tune its five GEMM sites at M = 1 and 8 and decode attention at batch 1 and 8 over 256
# slots, 40 configs a study, export, then its batch-1 x 256 matrix cell (unfused, table,
# torch.compile) for issue 10's 1.7B row.
#   OUT=dir bash benchmarks/run_session17_17b.sh
. benchmarks/_session.sh
m=qwen3-1.7b
db=/tmp/ks17_17b.db
rm -f $db
export KERNEL_SEARCH_DB=sqlite:///$db
start=$(date +%s)
timeout 300 python3 -m cli.app tune --model $m --buckets 1,8 --contexts 256 --trials 40 > "$OUT/tune_${m}.log" 2>&1
echo "tune rc=$? in $(( $(date +%s) - start )) s"
grep -v "━" "$OUT/tune_${m}.log" | quiet | tail -30 | cut -c1-170
key=$(python3 -c "from kernel_space.fingerprint import current_fingerprint; from storage.store import fingerprint_key; print(fingerprint_key(current_fingerprint()))")
python3 -m cli.app export --model $m --gpu "$key" -o "$OUT/dispatch_${m}_H100.json" 2>&1 | tail -3
gzip -c $db > "$OUT/tune_${m}.db.gz"
timeout 240 python3 benchmarks/e2e_matrix.py --models $m --batches 1 --contexts 256 \
  --arms unfused,table,torch_compile --table $m=$OUT/dispatch_${m}_H100.json \
  --out "$OUT/e2e_matrix_1.7b_H100_${day}.json" 2>&1 | quiet | tail -12
