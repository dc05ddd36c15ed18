"""Greedy decoding with the argmax in lm_head's epilogue (issue 10) against the argmax of the logits
inside the same decode graph: one model serving a table, the two arms alternating inside each cell
(Dispatcher.fuse_argmax, read when each cell's Generator captures its graphs), decode tok/s from
qwen3.bench.bench_cell (greedy, CUDA graph, median of 3), --rounds rounds.

    python benchmarks/argmax_probe.py OUT.json --model qwen3-0.6b --table T.json [--cells 1x256,32x256]
"""

from __future__ import annotations

import argparse

from benchmarks._probe import ab_rounds, ab_summary, table_args, table_model, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    table_args(parser, "qwen3-0.6b", "1x256,8x256,32x256")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = table_model(args.model, args.table)

    def arm(on: bool):
        return lambda: setattr(model.ops, "fuse_argmax", on)

    rows = ab_rounds(model, args.model, args.cells, args.rounds, [("logits", arm(False)), ("fused", arm(True))],
                     "argmax")
    summary = ab_summary(args.model, rows, args.cells, "argmax", "logits", "fused")
    write_result(args.out, model=args.model, table=str(args.table), rows=rows, summary=summary)


if __name__ == "__main__":
    main()
