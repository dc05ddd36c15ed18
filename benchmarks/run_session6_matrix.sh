#!/usr/bin/env bash
# Sixth session (2026-11-26): the committed GEMM tables with decode_attention tuned and merged in
# ("new") against the same tables without it ("old": the default attention plan), two rounds
# alternating, then the torch.compile peer, on one model's cells; one x1 call per model.
#   OUT=dir MODEL=qwen3-0.6b BATCHES=1,8,32 CONTEXTS=256,2048,8192 bash benchmarks/run_session6_matrix.sh
# ROUNDS (default 2) rounds of the two table arms; the peer at TC_BATCHES x TC_CONTEXTS (default: all
# cells) within TC_BUDGET seconds.
set -u
OUT=${OUT:-benchmarks/results/new}
MODEL=${MODEL:-qwen3-0.6b}; BATCHES=${BATCHES:-1,8,32}; CONTEXTS=${CONTEXTS:-256,2048,8192}
TC_BUDGET=${TC_BUDGET:-330}; ROUNDS=${ROUNDS:-2}
TC_BATCHES=${TC_BATCHES:-$BATCHES}; TC_CONTEXTS=${TC_CONTEXTS:-$CONTEXTS}
mkdir -p "$OUT"
day=$(date +%F)
R=benchmarks/results
NEW="$MODEL=$R/dispatch_${MODEL}_H100_merged.json"
OLD="$MODEL=$R/dispatch_${MODEL}_H100.json"
M="$OUT/e2e_matrix_${MODEL}_s6_H100_$day.json"
quiet() { grep -v "Warning\|_mismatch\|warnings.warn\|softmax\|^ *$"; }
e2e() { local limit=$1; shift
  timeout "$limit" python3 benchmarks/e2e_matrix.py --models "$MODEL" "$@" 2>&1 | quiet; }
for round in $(seq "$ROUNDS"); do
  e2e 150 --batches "$BATCHES" --contexts "$CONTEXTS" --arms table --table "$NEW" --out "$OUT/new_$round.json"
  e2e 150 --batches "$BATCHES" --contexts "$CONTEXTS" --arms table --table "$OLD" --out "$OUT/old_$round.json"
done
e2e "$TC_BUDGET" --batches "$TC_BATCHES" --contexts "$TC_CONTEXTS" --arms torch_compile --out "$OUT/tc.json"
python3 - "$OUT" "$M" <<'PY'
import json, pathlib, sys
out, dest = pathlib.Path(sys.argv[1]), sys.argv[2]
merged = None
for name, arm in (("new_1", "table"), ("old_1", "table_old"), ("new_2", "table"), ("old_2", "table_old"), ("tc", "torch_compile")):
    f = out / f"{name}.json"
    if not f.exists():
        continue
    d = json.loads(f.read_text())
    merged = merged or {k: v for k, v in d.items() if k != "rows"} | {"rows": []}
    for r in d["rows"]:
        merged["rows"].append(r | {"arm": arm, "round": name})
    f.unlink()
pathlib.Path(dest).write_text(json.dumps(merged, indent=1))
print("wrote", dest, len(merged["rows"]), "rows")
PY
