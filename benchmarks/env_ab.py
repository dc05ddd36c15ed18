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

import os
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._probe import ab_parser, ab_rounds, table_model, write_result


def main(argv=None) -> int:
    p = ab_parser(__doc__, rounds=2)
    p.add_argument("--env", required=True, help="the variable")
    p.add_argument("--values", required=True, help="comma list of its values")
    args = p.parse_args(argv)
    model = table_model(args.model, args.table)
    arms = [(value, partial(os.environ.__setitem__, args.env, value)) for value in args.values.split(",")]
    try:
        rows = ab_rounds(model, args.model, args.cells, args.rounds, arms, args.env, args.output_len)
    finally:
        os.environ.pop(args.env, None)
    write_result(args.out, model=args.model, table=str(args.table), rows=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
