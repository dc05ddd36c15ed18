"""The decode step of one model with each of several dispatch tables, and unfused, side by side in one
process: one model with random weights, every arm at every batch, in one order and then the reverse
(tuner.step_bench.measure: A B C C B A, each arm's time the mean of its two), after a thrown-away first
cell. For telling whether tables tuned different ways (one GPU or several, SQLite or PostgreSQL) are
equally good: their spread against the spread of two runs of one table.

    python3 benchmarks/tables_ab.py --model qwen3-0.6b --table 1gpu=a.json --table 4gpu=b.json \\
        --batches 1,8,32 --out benchmarks/results/tables_ab_<GPU>_<date>.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="qwen3-0.6b")
    p.add_argument("--table", action="append", default=[], metavar="NAME=FILE", help="an arm: a dispatch table")
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    import torch

    from qwen3.config import resolve_model
    from storage.table import load_table
    from tuner.step_bench import measure

    arms = [("unfused", None)]
    for spec in args.table:
        name, _, path = spec.partition("=")
        if not path:
            p.error(f"--table {spec!r}: expected NAME=FILE")
        arms.append((name, load_table(path)))
    batches = [int(b) for b in args.batches.split(",")]
    config = resolve_model(args.model)
    rows = measure(config, arms, batches, args.dtype, progress=lambda text: print(text, flush=True))
    out = {"gpu": torch.cuda.get_device_name(0), "date": dt.date.today().isoformat(), "model": args.model,
           "tables": dict(spec.partition("=")[::2] for spec in args.table), "method": "tuner.step_bench.measure "
           "(A B .. B A, the mean of each arm's two runs, each the median of 3 timed runs of 32 decode steps "
           "after a 128-token prompt, CUDA graph)",
           "rows": [{"arm": r.arm, "batch": r.batch, "step_ms": round(r.step_ms, 4), "tok_s": round(r.tok_s, 1)}
                    for r in rows]}
    args.out.write_text(json.dumps(out, indent=1))
    for batch in batches:
        line = [f"batch {batch:3d}:"]
        for r in rows:
            if r.batch == batch:
                line.append(f"{r.arm} {r.tok_s:,.0f}")
        print("  ".join(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
