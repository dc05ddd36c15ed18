"""What the q/k prep kernel (qk_norm_rope_cache) costs in the decode step: the most that moving its work
into the QKV GEMM's epilogue (issue 10) could save, measured before building it.

    python3 benchmarks/prep_bound_probe.py OUT.json --model qwen3-0.6b --table T.json --cells 1x256,8x256

Arms, rounds alternating (benchmarks._probe.ab_rounds: bench_cell, CUDA graph, median of 3):
- `prep`: the decode step as it runs;
- `none`: the same step with the prep kernel left out. QKNormRopeCache returns an uninitialized q of
  the right shape and writes no K/V: the tokens are garbage, the kernels and their order otherwise
  the same. Not a step to ship: an upper bound on what removing one kernel a layer saves.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._probe import ab_parser, ab_rounds, ab_summary, table_model, write_result
from qwen3.layers import QKNormRopeCache

_real_forward = QKNormRopeCache.forward
_skip = {"on": False}


def _forward(self, qkv, q_norm, k_norm, rotary, positions, attn, first_row=0):
    if not _skip["on"] or positions.shape[1] != 1:  # prefills keep the real prep
        return _real_forward(self, qkv, q_norm, k_norm, rotary, positions, attn, first_row)
    b = positions.shape[0]
    return torch.empty((b, 1, self.num_heads, self.head_dim), dtype=qkv.dtype, device=qkv.device)


def main(argv=None) -> int:
    p = ab_parser(__doc__, rounds=3)
    args = p.parse_args(argv)
    QKNormRopeCache.forward = _forward
    model = table_model(args.model, args.table)
    arms = [("prep", lambda: _skip.update(on=False)), ("none", lambda: _skip.update(on=True))]
    try:
        rows = ab_rounds(model, args.model, args.cells, args.rounds, arms, "arm", args.output_len)
    finally:
        _skip["on"] = False
        QKNormRopeCache.forward = _real_forward
    summary = ab_summary(args.model, rows, args.cells, "arm", "prep", "none")
    write_result(args.out, model=args.model, table=str(args.table), rows=rows, summary=summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
