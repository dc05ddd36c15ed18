"""Does the place of a cell in a process change its time? The same arm (no table: the unfused step;
or --table) measured three times in a row, cell by cell as qwen3.bench.bench_arms does but without its
thrown-away first cell (qwen3.bench.first_cell, which this probe's results led to), at --batches (in
that order), context 128, then once more on a fresh model. Writes a JSON of the step times.

    python3 benchmarks/order_probe.py --model qwen3-0.6b [--table t.json] [--batches 8,1] --out probe.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="qwen3-0.6b")
    p.add_argument("--table", default=None, help="a dispatch table for every arm (default: none)")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--clear-cublas", action="store_true",
                   help="drop PyTorch's cuBLAS workspaces before every cell (does the first cell's state come back?)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    import torch

    from qwen3.config import resolve_model
    from qwen3.dispatch import Dispatcher
    from qwen3.loader import random_weights
    from storage import load_table

    config = resolve_model(args.model)
    import qwen3.bench

    if args.clear_cublas:
        cell = qwen3.bench.bench_cell

        def bench_cell(*a, **k):
            torch.cuda.synchronize()
            torch._C._cuda_clearCublasWorkspaces()
            return cell(*a, **k)

        qwen3.bench.bench_cell = bench_cell
    table = load_table(args.table) if args.table else None
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    for call in (1, 2):
        model = random_weights(config, torch.bfloat16, "cuda", 0)
        for arm in (f"call{call}_arm{i}" for i in (1, 2, 3)):
            model.set_dispatcher(Dispatcher(table))
            for batch in batches:
                r = qwen3.bench.bench_cell(model, arm, batch, 128, 32, 3)
                rows.append({"arm": r.arm, "batch": r.batch, "step_ms": round(r.decode_ms, 4)})
                print(rows[-1], flush=True)
        del model
    out = {"gpu": torch.cuda.get_device_name(0), "model": args.model, "table": args.table, "batches": batches,
           "clear_cublas": args.clear_cublas, "rows": rows}
    Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
