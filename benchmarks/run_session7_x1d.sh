#!/usr/bin/env bash
# Seventh session (2026-11-26), fourth nvidia-h100-x1 call: the unfused step's first-cell effect at
# batch 1 (order_probe.py), without and with PyTorch's cuBLAS workspaces dropped before every cell;
# then the merged 0.6B table (tuned decode attention at batch 1, 8, 32) against the committed one,
# batch 1 and 8 at context 256, 2k and 8k, one more round.
#   OUT=dir bash benchmarks/run_session7_x1d.sh
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
day=$(date +%F)
nvidia-smi -L
R=benchmarks/results
quiet() { grep -v "Warning\|_mismatch\|warnings.warn\|softmax\|━\|^ *$"; }
for flag in "" --clear-cublas; do
  timeout 80 python3 benchmarks/order_probe.py --model qwen3-0.6b $flag --out "$OUT/order_probe${flag:+_clear}_H100_$day.json" 2>&1 \
    | quiet | grep "'batch': 1"
done
m=qwen3-0.6b; work=$(mktemp -d)
e2e() { timeout 120 python3 benchmarks/e2e_matrix.py --models $m --batches 1,8 --contexts 256,2048,8192 --arms table "$@" 2>&1 | quiet | grep tok/s; }
e2e --table "$m=$R/dispatch_${m}_H100.json" --out "$work/old_3.json"
e2e --table "$m=$R/attention_s7_H100_2026-11-26/2_merged_qwen3-0.6b.json" --out "$work/new_3.json"
python3 - "$work" "$OUT/e2e_attn7b_round3_${m}_H100_$day.json" <<'PY'
import json, pathlib, sys
work, dest = pathlib.Path(sys.argv[1]), sys.argv[2]
merged = None
for f in sorted(work.glob("*.json")):
    d = json.loads(f.read_text())
    merged = merged or {k: v for k, v in d.items() if k != "rows"} | {"rows": []}
    arm = "table_attn7b" if f.name.startswith("new") else "table_committed"
    merged["rows"] += [r | {"arm": arm, "round": f.stem} for r in d["rows"]]
pathlib.Path(dest).write_text(json.dumps(merged, indent=1))
for r in merged["rows"]:
    print(r["arm"], r["round"], r["batch"], r["context"], r.get("decode_tok_s"))
PY
