#!/usr/bin/env bash
# Seventh session (2026-11-26), nvidia-h100-x1: the first GPU run of tune's end-to-end check of decode
# attention buckets. Tune decode_attention for Qwen3-0.6B at batch 1 and 8 over four context buckets
# with the check on, export (a bucket whose step is faster on the default plan is written `plan`),
# merge into the committed GEMM table, then the step with that table against the committed one
# (default plan), alternating, ROUNDS rounds.
#   OUT=dir bash benchmarks/run_session7_x1.sh
set -u
OUT=${OUT:-benchmarks/results/new}
ROUNDS=${ROUNDS:-2}
mkdir -p "$OUT"
day=$(date +%F)
nvidia-smi -L
m=qwen3-0.6b
db="$OUT/attn7_$m.db"
R=benchmarks/results
quiet() { grep -v "Warning\|_mismatch\|warnings.warn\|softmax\|━\|^ *$"; }
timeout 300 python3 -m cli.app tune --model $m --op decode_attention --buckets 1,8 --contexts 256,1024,4096,16384 \
  --trials 12 --seconds 110 --db "sqlite:///$db" > "$OUT/attn7_tune_$m.log" 2>&1
echo "tune rc $?"; quiet < "$OUT/attn7_tune_$m.log" | tail -40
python3 -m cli.app export --model $m --db "sqlite:///$db" -o "$OUT/dispatch_attn7_${m}_H100_$day.json" 2>&1 | tail -6
python3 -m cli.app merge "$R/dispatch_${m}_H100.json" "$OUT/dispatch_attn7_${m}_H100_$day.json" -o "$OUT/merged7.json"
python3 -m cli.app query --db "sqlite:///$db" --model $m 2>&1 | tail -30
e2e() { timeout 140 python3 benchmarks/e2e_matrix.py --models $m --batches 1,8 --contexts 256,2048,8192 --arms table "$@" 2>&1 | quiet | tail -8; }
for round in $(seq "$ROUNDS"); do
  e2e --table "$m=$OUT/merged7.json" --out "$OUT/new_$round.json"
  e2e --table "$m=$R/dispatch_${m}_H100.json" --out "$OUT/old_$round.json"
done
python3 - "$OUT" "$OUT/e2e_attn7_${m}_H100_$day.json" <<'PY'
import json, pathlib, sys
out, dest = pathlib.Path(sys.argv[1]), sys.argv[2]
merged = None
for f in sorted(out.glob("new_*.json")) + sorted(out.glob("old_*.json")):
    d = json.loads(f.read_text())
    merged = merged or {k: v for k, v in d.items() if k != "rows"} | {"rows": []}
    arm = "table_attn7" if f.name.startswith("new") else "table_committed"
    merged["rows"] += [r | {"arm": arm, "round": f.stem} for r in d["rows"]]
    f.unlink()
pathlib.Path(dest).write_text(json.dumps(merged, indent=1))
print("wrote", dest, len(merged["rows"]), "rows")
for r in merged["rows"]:
    print(r["arm"], r["round"], r["batch"], r["context"], r.get("decode_tok_s"))
PY
gzip -f "$db"
