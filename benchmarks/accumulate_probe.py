"""What split-K's reduction costs o_proj and down in the decode step: the most that adding each split's
partial straight into an fp32 residual stream (an atomic add, no partials, no arrival counter, no
last-program reload) could save, measured before building such a stream.

    python3 benchmarks/accumulate_probe.py OUT.json --model qwen3-0.6b --table T.json --cells 1x256,8x256

The residual sites reduce their splits as the table says: the last program of a tile counts arrivals
with an atomic, reloads every split's partial from L2, adds the residual and writes the tile; or a
second kernel does. `accumulate` (below: _gemm's ACCUMULATE variant) instead adds each program's
partial into an fp32 [M, N] buffer with a relaxed atomic (a `red`: nothing waits for it),
which is what o_proj and down would do if the stream they add into were fp32 and updated in place.

Arms, rounds alternating (benchmarks._probe.ab_rounds: bench_cell, CUDA graph, median of 3):
- `table`: the decode step as it runs;
- `accumulate`: o_proj_residual and down_residual at decode rows (M <= 64) run accumulate with
  the table's own tile, split and warps, into a scratch fp32 buffer, and hand the residual on unchanged:
  the tokens are garbage (no layer adds its attention or MLP), the kernels, their weights and their
  order otherwise the same. The stream's reads by the next kernels stay bf16 (at M <= 64 that is 2-128
  KB of a layer's megabytes);
- `accumulate_x2`: the same with twice the splits (half the BLOCK_K) where the K slice allows it: with
  the reduction gone, more splits cost less;
- `skip`: both sites launch nothing at all (the residual handed on): what the two kernels cost.
Before the rounds, accumulate's sum is checked against residual + x @ W^T for every (site, M)
the cells run (the buffer starts as the residual in fp32). The model's stream is its dtype in every arm
(KERNEL_SEARCH_STREAM=model: the probe measured the step before the wide streams existed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._probe import ab_parser, ab_rounds, ab_summary, table_model, write_result
from kernel_space import _gemm
from qwen3.dispatch import Dispatcher
from qwen3.model import STREAM_ENV


def accumulate(x: torch.Tensor, w: torch.Tensor, out: torch.Tensor, cfg: dict) -> None:
    """out += x @ w^T with cfg's tile, split and warps (out fp32 [M, N]): _gemm's ACCUMULATE variant,
    which the fp32 and fixed-point streams of qwen3.model run. (The probe first ran a kernel of its own
    built from _gemm's jit helpers, the same code; the variant replaced it once built.)"""
    _gemm.launch_fused_linear(x, w, cfg, res_out=out, accumulate=True)


def doubled(cfg: dict, k: int) -> dict:
    """cfg with twice the splits and half the BLOCK_K, where every split still holds a block."""
    new = dict(cfg, SPLIT_K=cfg["SPLIT_K"] * 2, BLOCK_K=cfg["BLOCK_K"] // 2)
    if new["BLOCK_K"] < 16 or -(-k // new["BLOCK_K"]) < new["SPLIT_K"]:
        return cfg
    return new


_real = {name: getattr(Dispatcher, name) for name in ("o_proj_residual", "down_residual")}
_mode = {"arm": "table"}
_buffers: dict = {}


def _site(name: str):
    def run(self, x, residual, w):
        choice = self._run(name, x, w)
        if _mode["arm"] == "table" or x.shape[0] > 64 or choice.arm != "fused":
            return _real[name](self, x, residual, w)
        if _mode["arm"] == "skip":
            return residual
        cfg = choice.config if _mode["arm"] == "accumulate" else doubled(choice.config, w.shape[1])
        key = (residual.shape, residual.device)
        if key not in _buffers:
            _buffers[key] = torch.zeros(residual.shape, dtype=torch.float32, device=residual.device)
        accumulate(x, w, _buffers[key], cfg)
        return residual
    return run


def check(model, ms: list[int]) -> list[dict]:
    """accumulate against residual + x @ W^T (fp32 reference) for both sites at each M."""
    disp = model.ops
    layer = model.model.layers[0]
    rows = []
    for name, w in (("o_proj_residual", layer.self_attn.o_proj.weight), ("down_residual", layer.mlp.down_proj.weight)):
        for m in ms:
            x = torch.randn(m, w.shape[1], device=w.device, dtype=w.dtype)
            res = torch.randn(m, w.shape[0], device=w.device, dtype=w.dtype)
            choice = disp._run(name, x, w)
            if choice.arm != "fused":
                continue
            want = res.float() + x.float() @ w.float().T
            for arm, cfg in (("accumulate", choice.config), ("accumulate_x2", doubled(choice.config, w.shape[1]))):
                out = res.float().clone()
                accumulate(x, w, out, cfg)
                err = ((out - want).abs().max() / want.abs().max()).item()
                rows.append({"site": name, "m": m, "arm": arm, "config": cfg, "rel_err": err})
                print(f"check {name} M={m} {arm}: rel. error {err:.2e}", flush=True)
                if not err < 1e-2:
                    raise SystemExit(f"{name} M={m} {arm}: rel. error {err:.2e}")
    return rows


def main(argv=None) -> int:
    p = ab_parser(__doc__, rounds=3)
    args = p.parse_args(argv)
    os.environ[STREAM_ENV] = "model"
    model = table_model(args.model, args.table)
    batches = sorted({int(c.split("x")[0]) for c in args.cells.lower().split(",")})
    checks = check(model, batches)
    for name in _real:
        setattr(Dispatcher, name, _site(name))
    arms = [(arm, lambda arm=arm: _mode.update(arm=arm)) for arm in ("table", "accumulate", "accumulate_x2", "skip")]
    try:
        rows = ab_rounds(model, args.model, args.cells, args.rounds, arms, "arm", args.output_len)
    finally:
        _mode["arm"] = "table"
        for name, fn in _real.items():
            setattr(Dispatcher, name, fn)
    summary = [ab_summary(args.model, rows, args.cells, "arm", "table", new)
               for new in ("accumulate", "accumulate_x2", "skip")]
    write_result(args.out, model=args.model, table=str(args.table), checks=checks, rows=rows, summary=summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
