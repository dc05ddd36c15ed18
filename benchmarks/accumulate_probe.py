"""What split-K's reduction costs o_proj and down in the decode step: the most that adding each split's
partial straight into an fp32 residual stream (an atomic add, no partials, no arrival counter, no
last-program reload) could save, measured before building such a stream.

    python3 benchmarks/accumulate_probe.py OUT.json --model qwen3-0.6b --table T.json --cells 1x256,8x256

The residual sites reduce their splits as the table says: the last program of a tile counts arrivals
with an atomic, reloads every split's partial from L2, adds the residual and writes the tile; or a
second kernel does. `accumulate_kernel` (below, from _gemm's own jit helpers) instead adds each
program's partial into an fp32 [M, N] buffer with a relaxed atomic (a `red`: nothing waits for it),
which is what o_proj and down would do if the stream they add into were fp32 and updated in place.

Arms, rounds alternating (benchmarks._probe.ab_rounds: bench_cell, CUDA graph, median of 3):
- `table`: the decode step as it runs;
- `accumulate`: o_proj_residual and down_residual at decode rows (M <= 64) run accumulate_kernel with
  the table's own tile, split and warps, into a scratch fp32 buffer, and hand the residual on unchanged:
  the tokens are garbage (no layer adds its attention or MLP), the kernels, their weights and their
  order otherwise the same. The stream's reads by the next kernels stay bf16 (at M <= 64 that is 2-128
  KB of a layer's megabytes);
- `accumulate_x2`: the same with twice the splits (half the BLOCK_K) where the K slice allows it: with
  the reduction gone, more splits cost less;
- `skip`: both sites launch nothing at all (the residual handed on): what the two kernels cost.
Before the rounds, accumulate_kernel's sum is checked against residual + x @ W^T for every (site, M)
the cells run (the buffer starts as the residual in fp32).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._probe import ab_parser, ab_rounds, ab_summary, table_model, write_result
from kernel_space import _gemm
from kernel_space._gemm import _k_loop, _k_step, _prefetch_weights, _tile_of, _w_tile, pdl_enter
from kernel_space.geometry import LinearLaunch
from qwen3.dispatch import Dispatcher


@triton.jit
def accumulate_kernel(x_ptr, w_ptr, out_ptr, M, N, K, K_PER_SPLIT, stride_xm, stride_wn, stride_om,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLIT_K: tl.constexpr,
                      USE_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr, ONE_BLOCK: tl.constexpr,
                      PDL: tl.constexpr = False, PREFETCH: tl.constexpr = False):
    """out[M, N] (fp32) += x @ W^T: each program's K slice, added with an atomic (one split: a plain
    read, add and write). Weights before PDL's wait as fused_linear_kernel loads them."""
    pid_m, pid_n = _tile_of(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, 1)
    pid_k = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    k_start = pid_k * K_PER_SPLIT
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    ss = tl.zeros((BLOCK_M,), dtype=tl.float32)
    if ONE_BLOCK:
        offs_k = k_start + tl.arange(0, BLOCK_K)
        w, w2 = _w_tile(w_ptr, offs_n, offs_k, N, K, stride_wn, False)
        if PDL:
            pdl_enter(PDL)
        acc, acc2, ss = _k_step(acc, acc, ss, x_ptr, x_ptr, w, w2, offs_m, offs_k, M, K, stride_xm, False, False,
                                USE_DOT, DOT_PRECISION)
    else:
        if PDL:
            if PREFETCH:
                _prefetch_weights(w_ptr, offs_n, k_start, N, K, K_PER_SPLIT, stride_wn, False)
            pdl_enter(PDL)
        acc, acc2, ss = _k_loop(acc, acc, ss, x_ptr, x_ptr, w_ptr, offs_m, offs_n, k_start, M, N, K, K_PER_SPLIT,
                                stride_xm, stride_wn, False, False, BLOCK_K, USE_DOT, DOT_PRECISION)
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    ptrs = out_ptr + offs_m[:, None] * stride_om + offs_n[None, :]
    if SPLIT_K == 1:
        tl.store(ptrs, tl.load(ptrs, mask=mask, other=0.0) + acc, mask=mask)
    else:
        tl.atomic_add(ptrs, acc, mask=mask, sem="relaxed", scope="gpu")


def accumulate(x: torch.Tensor, w: torch.Tensor, out: torch.Tensor, cfg: dict) -> None:
    """out += x @ w^T with cfg's tile, split and warps (out fp32 [M, N])."""
    m, k = x.shape
    launch = LinearLaunch.of(cfg, m, w.shape[0], k, False)
    accumulate_kernel[launch.grid](
        x, w, out, m, launch.n, k, launch.k_per_split, x.stride(0), w.stride(0), out.stride(0),
        BLOCK_M=launch.block_m, BLOCK_N=launch.block_n, BLOCK_K=launch.block_k, SPLIT_K=launch.split,
        USE_DOT=cfg["path"] == "dot", DOT_PRECISION="tf32", ONE_BLOCK=launch.k_per_split == launch.block_k,
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
        **_gemm.pdl_launch_args(x.device, launch.tiles * launch.split, w.numel() * w.element_size()),
    )


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
    """accumulate_kernel against residual + x @ W^T (fp32 reference) for both sites at each M."""
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
