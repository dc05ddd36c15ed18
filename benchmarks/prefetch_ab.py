"""The GEMMs' early weight prefetch (kernel_space._gemm.weight_prefetch) in the decode step: its
policies side by side, rounds alternating (ABC ABC), on one machine.

    python3 benchmarks/prefetch_ab.py OUT.json --model qwen3-8b --table T.json --cells 32x256,1x256

Policies (KERNEL_SEARCH_W_PREFETCH): `all` prefetches every slice of a grid of at most two programs an
SM (before the eleventh session), `fit` only where the weight matrix fits half of L2, `0` never.
Per cell and policy: decode tok/s of the table arm (qwen3.bench.bench_cell: CUDA graph, median of 3).
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

POLICIES = ("all", "fit", "0")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--model", default="qwen3-0.6b", choices=sorted(PRESETS))
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--cells", default="1x256")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--output-len", type=int, default=64)
    args = p.parse_args(argv)
    model = random_weights(PRESETS[args.model], torch.bfloat16, "cuda", 0)
    first_cell(model)
    model.set_dispatcher(Dispatcher(args.table))
    rows = []
    for rnd in range(args.rounds):
        for spec in args.cells.split(","):
            batch, context = (int(x) for x in spec.lower().split("x"))
            for policy in POLICIES:
                os.environ["KERNEL_SEARCH_W_PREFETCH"] = policy
                row = bench_cell(model, "table", batch, context, args.output_len, 3)
                rows.append({"round": rnd, "batch": batch, "context": context, "policy": policy,
                             "decode_ms": row.decode_ms, "tok_s": row.tokens_per_s})
                print(f"{args.model} round {rnd} batch {batch} x {context} prefetch={policy:3s}: "
                      f"{row.tokens_per_s:9,.0f} tok/s ({row.decode_ms * 1000:.0f} us a step)", flush=True)
    os.environ.pop("KERNEL_SEARCH_W_PREFETCH", None)
    args.out.write_text(json.dumps({"gpu": torch.cuda.get_device_name(0), "date": dt.date.today().isoformat(),
                                    "model": args.model, "table": str(args.table), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
