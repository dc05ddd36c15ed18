"""An environment variable's values side by side in the decode step, rounds alternating (ABC ABC),
on one machine: decode tok/s of the table arm (qwen3.bench.bench_cell: CUDA graph, median of 3).

    python3 benchmarks/env_ab.py OUT.json --model qwen3-8b --table T.json --cells 32x256,1x256 \
        --env KERNEL_SEARCH_PDL --values 1,0

The launchers read these variables at every launch (KERNEL_SEARCH_PDL, KERNEL_SEARCH_KV_PREFETCH), so
each cell's CUDA graph, captured after the variable is set, runs that value's kernels. The eleventh
session's first use compared the GEMMs' early weight prefetch policies (KERNEL_SEARCH_W_PREFETCH=all,
fit, 0 of a commit it reverted: prefetch_ab_*.json, same rows with "policy").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qwen3.bench import bench_cell, first_cell
from qwen3.config import PRESETS
from qwen3.dispatch import Dispatcher
from qwen3.loader import random_weights


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--model", default="qwen3-0.6b", choices=sorted(PRESETS))
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--cells", default="1x256")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--output-len", type=int, default=64)
    p.add_argument("--env", required=True, help="the variable")
    p.add_argument("--values", required=True, help="comma list of its values")
    args = p.parse_args(argv)
    model = random_weights(PRESETS[args.model], torch.bfloat16, "cuda", 0)
    first_cell(model)
    model.set_dispatcher(Dispatcher(args.table))
    rows = []
    for rnd in range(args.rounds):
        for spec in args.cells.split(","):
            batch, context = (int(x) for x in spec.lower().split("x"))
            for value in args.values.split(","):
                os.environ[args.env] = value
                row = bench_cell(model, "table", batch, context, args.output_len, 3)
                rows.append({"round": rnd, "batch": batch, "context": context, "env": args.env, "value": value,
                             "decode_ms": row.decode_ms, "tok_s": row.tokens_per_s})
                print(f"{args.model} round {rnd} batch {batch} x {context} {args.env}={value}: "
                      f"{row.tokens_per_s:9,.0f} tok/s ({row.decode_ms * 1000:.0f} us a step)", flush=True)
    os.environ.pop(args.env, None)
    args.out.write_text(json.dumps({"gpu": torch.cuda.get_device_name(0), "date": dt.date.today().isoformat(),
                                    "model": args.model, "table": str(args.table), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
