#!/usr/bin/env bash
# Thirtieth session (2026-11-29), one H200: would a search of the accumulate variant weigh fewer splits?
# The committed 0.6B table at batch 1 with o_proj's and down's M=1 configs split 4 (as tuned), 2 and 1
# ways, each with its stream set in the table ("stream": fixed or model at batch 1), side by side in one
# process (tables_ab.py: A B .. B A). A probe: no table ships from it.
#   OUT=dir bash benchmarks/run_session30_splits.sh
source benchmarks/_session.sh
python3 - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
base = json.loads(Path("benchmarks/results/dispatch_qwen3-0.6b_H100.json").read_text())
for split in (4, 2, 1):
    for stream in ("fixed", "model"):
        t = json.loads(json.dumps(base))
        for op in ("o_proj_residual", "down_residual"):
            bucket = next(b for b in t["ops"][op]["buckets"] if b["m"] == 1)
            bucket["config"]["SPLIT_K"] = split
            if split == 1:
                bucket["config"]["split_reduce"] = "kernel"  # the space's one spelling of no split
        t["stream"] = [{"batch": 1, "stream": stream}]
        (out / f"split{split}_{stream}.json").write_text(json.dumps(t))
PY
args=()
for f in split4_fixed split2_fixed split1_fixed split4_model split1_model; do args+=(--table "$f=$OUT/$f.json"); done
timeout 240 python3 benchmarks/tables_ab.py --model qwen3-0.6b "${args[@]}" --batches 1 --out "$OUT/splits.json" 2>&1 \
  | quiet | grep -v "capture\|untuned" | tail -4 | cut -c1-250
