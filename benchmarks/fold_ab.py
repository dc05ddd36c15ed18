"""The decode step with the norm gains folded into the weights against without (issue 10): two copies
of a preset on the same random weights in one process, one unfolded serving the table tuned that way
(restamped to this tree's kernel hashes: at the norm sites it runs the gain-in-the-loop kernels it was
tuned on, see benchmarks/compile_survey.py) and one folded (as the loaders now build a model) serving
the table re-tuned on the folded kernels. Arms alternate inside each cell, each a CUDA-graph decode
(qwen3.bench.bench_cell, median of 3), for --rounds rounds.

    python benchmarks/fold_ab.py OUT.json --model qwen3-0.6b --unfolded-table OLD.json --folded-table NEW.json \
        [--cells 1x256,8x256,32x256] [--rounds 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks._probe import ab_rounds, ab_summary, write_result
from qwen3.config import PRESETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", default="qwen3-0.6b", choices=sorted(PRESETS))
    parser.add_argument("--unfolded-table", type=Path, required=True)
    parser.add_argument("--folded-table", type=Path, required=True)
    parser.add_argument("--cells", default="1x256,8x256,32x256", help="BATCHxCONTEXT, comma separated")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from qwen3.bench import first_cell
    from qwen3.dispatch import Dispatcher
    from qwen3.loader import random_weights

    arms = []
    for label, fold, table in (("unfolded", False, args.unfolded_table), ("folded", True, args.folded_table)):
        model = random_weights(PRESETS[args.model], torch.bfloat16, "cuda", 0, fold_gains=fold)
        first_cell(model)
        model.set_dispatcher(Dispatcher(table))
        arms.append((label, lambda m=model: m))
    rows = ab_rounds(None, args.model, args.cells, args.rounds, arms, "arm")
    summary = ab_summary(args.model, rows, args.cells, "arm", "unfolded", "folded")
    write_result(args.out, model=args.model, unfolded_table=str(args.unfolded_table),
                 folded_table=str(args.folded_table), rows=rows, summary=summary)


if __name__ == "__main__":
    main()
