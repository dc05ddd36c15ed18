"""Which half of a last-program split-K launch goes wrong: the partials its programs store, or the sum
its last program makes of them?

splitk_race_probe.py (twenty-fourth session) found rmsnorm_qkv configs (M = 128 and 256, 128 x 128
`tl.dot` tiles, 8 warps) whose output with split_reduce=last_program differs from the reduce kernel's in
every run, although both sum the same partials in the same order. This probe runs the two launches by
hand and keeps their scratch: for each config and fresh input it compares

- the partials (and partial sums of squares) the two GEMM kernels stored, bit for bit;
- the last program's output with the reduce kernel run over the last-program launch's own partials;
- the arrival counters after the launch (every tile's must be back at zero);

and, where the outputs differ, which tiles and which rows / columns of a tile differ (a warp that took
the other branch leaves its own rows or columns).

    python -m benchmarks.splitk_race_halves --out halves.json [--repeats 6] [--variant V]

--variant changes how the GEMM launches, to find what the mismatch needs (the twenty-eighth session found
it only with PDL on): `noprefetch` leaves out the L2 weight prefetch before PDL's wait; `nolaunchpdl`
compiles the kernel with its PDL instructions but launches it without PDL (they are then no-ops, and
the kernel starts only after the one ahead of it ends); `sync` waits for the GPU before each launch.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
from pathlib import Path

import torch

import kernel_space as ks
from kernel_space import _gemm
from kernel_space._common import linear_weight, randn
from qwen3.config import PRESETS

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPE = torch.bfloat16 if DEVICE == "cuda" else torch.float16  # the interpreter computes bf16 wrongly
BASE = {"path": "dot", "BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "GROUP_M": 1, "num_warps": 8,
        "num_stages": 3, "SPLIT_K": 2, "prologue": "inline"}
CASES = [  # (m, changes to BASE): the twenty-fourth session's failures first, then controls that matched
    (128, {}), (128, {"SPLIT_K": 8}), (256, {"num_stages": 4, "SPLIT_K": 2}), (128, {"num_stages": 2}),
    (128, {"num_warps": 4}), (128, {"num_stages": 2, "SPLIT_K": 8}), (128, {"BLOCK_N": 64, "SPLIT_K": 8}),
]


VARIANTS = ("none", "noprefetch", "nolaunchpdl", "sync")


@contextlib.contextmanager
def variant(name: str):
    """The GEMM launches as `name` says (see the module's docstring)."""
    original = _gemm.pdl_launch_args
    drop = {"noprefetch": "PREFETCH", "nolaunchpdl": "launch_pdl"}.get(name)

    def patched(*args, **kwargs):
        launch = original(*args, **kwargs)
        launch.pop(drop, None)
        return launch

    _gemm.pdl_launch_args = patched if drop else original
    try:
        yield
    finally:
        _gemm.pdl_launch_args = original


def _run(h, w, cfg, reduce_by_kernel: bool, sync: bool = False):
    if sync and DEVICE == "cuda":
        torch.cuda.synchronize()
    plan = _gemm._plan(h, w, cfg, norm=True, gated=False, gain=False)
    out = torch.empty((h.shape[0], w.shape[0]), device=h.device, dtype=h.dtype)
    scratch = _gemm._allocate(h, out, plan)
    _gemm._launch_gemm(plan, scratch, w, None, None, out, 1e-6)
    if reduce_by_kernel:
        _gemm._launch_reduce(plan, scratch, None, out, 1e-6)
    return plan, scratch, out


def _where(diff: torch.Tensor, bm: int, bn: int) -> dict:
    """Which tiles and which rows / columns inside a tile hold differing elements."""
    rows, cols = diff.nonzero(as_tuple=True)
    tiles = sorted({(int(r) // bm, int(c) // bn) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)})
    return {"elements": int(diff.sum()), "of": diff.numel(), "tiles": len(tiles), "first_tiles": tiles[:8],
            "rows_in_tile": sorted({int(r) % bm for r in rows.tolist()})[:16],
            "row_span": [int((rows % bm).min()), int((rows % bm).max())] if len(rows) else [],
            "col_span": [int((cols % bn).min()), int((cols % bn).max())] if len(cols) else []}


def compare(m: int, cfg: dict, repeats: int, how: str = "none") -> dict:
    n, k = ks.get_op("rmsnorm_qkv").shape(PRESETS["qwen3-0.6b"].dims())
    last_cfg = {**cfg, "split_reduce": "last_program"}
    kern_cfg = {**cfg, "split_reduce": "kernel"}
    row = {"m": m, "n": n, "k": k, "config": cfg, "pdl": _gemm.pdl_enabled(torch.device(DEVICE)), "variant": how,
           "runs": []}
    for rep in range(repeats):
        gen = torch.Generator(device=DEVICE).manual_seed(1000 * rep + m)
        h = randn((m, k), DTYPE, DEVICE, gen)
        w = linear_weight(n, k, DTYPE, DEVICE, gen)
        with variant(how):
            plan_l, scratch_l, out_l = _run(h, w, last_cfg, False, how == "sync")
        torch.cuda.synchronize() if DEVICE == "cuda" else None
        counts = scratch_l.counts[: plan_l.launch.tiles].clone()
        part_l, ss_l = scratch_l.part.clone(), scratch_l.ss.clone()
        with variant(how):
            plan_k, scratch_k, out_k = _run(h, w, kern_cfg, True, how == "sync")
        # The reduce kernel over the last-program launch's own partials.
        again = torch.empty_like(out_l)
        _gemm._launch_reduce(plan_k, scratch_l._replace(part=part_l, ss=ss_l), None, again, 1e-6)
        if DEVICE == "cuda":
            torch.cuda.synchronize()
        run = {
            "partials_equal": bool(torch.equal(part_l, scratch_k.part)),
            "sumsq_equal": bool(torch.equal(ss_l, scratch_k.ss)),
            "out_last_equals_kernel": bool(torch.equal(out_l, out_k)),
            "out_last_equals_own_partials_reduced": bool(torch.equal(out_l, again)),
            "own_partials_reduced_equals_kernel": bool(torch.equal(again, out_k)),
            "counters_nonzero": int((counts != 0).sum()),
        }
        if not run["partials_equal"]:
            # Each launch's partials against fp64 sums of the split's slice: which launch stored wrong ones.
            split = plan_l.launch.split
            ref = torch.einsum("msk,nsk->smn", h.double().view(m, split, -1), w.double().view(n, split, -1))
            run["partials_err_last"] = (part_l.view(split, m, n).double() - ref).abs().max().item()
            run["partials_err_kernel"] = (scratch_k.part.view(split, m, n).double() - ref).abs().max().item()
            d = (part_l != scratch_k.part)
            run["partials_differ"] = int(d.sum())
            run["partials_differ_by_split"] = d.flatten(1).sum(1).tolist()
        if not run["sumsq_equal"]:
            run["sumsq_differ"] = int((ss_l != scratch_k.ss).sum())
        if not run["out_last_equals_kernel"]:
            run["where"] = _where(out_l != out_k, plan_l.launch.block_m, plan_l.launch.block_n)
            run["max_abs"] = (out_l.float() - out_k.float()).abs().max().item()
        row["runs"].append(run)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--cases", type=int, default=len(CASES), help="the first N cases only")
    ap.add_argument("--variant", default="none", help="comma list of: " + ", ".join(VARIANTS))
    args = ap.parse_args()
    gpu = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu"
    rows = []
    hows = args.variant.split(",")
    if set(hows) - set(VARIANTS):
        ap.error(f"--variant takes {', '.join(VARIANTS)}")
    for how, (m, change) in ((how, case) for how in hows for case in CASES[: args.cases]):
        cfg = {**BASE, **change}
        if DEVICE == "cpu":
            m = min(m, 16)  # a smoke run under the interpreter
        row = compare(m, cfg, args.repeats, how)
        rows.append(row)
        keys = ("partials_equal", "sumsq_equal", "out_last_equals_kernel", "out_last_equals_own_partials_reduced",
                "own_partials_reduced_equals_kernel")
        tally = {key: sum(r[key] for r in row["runs"]) for key in keys}
        print(f"M={m} {change or 'base'} pdl={row['pdl']} {how}: " + " ".join(f"{key}={v}/{len(row['runs'])}"
                                                                        for key, v in tally.items()),
              "counters_nonzero", [r["counters_nonzero"] for r in row["runs"]], flush=True)
        bad = [r for r in row["runs"] if "where" in r]
        if bad:
            print("   where:", json.dumps(bad[0]["where"])[:400], "max_abs", bad[0]["max_abs"], flush=True)
    Path(args.out).write_text(json.dumps({"gpu": gpu, "date": dt.date.today().isoformat(),
                                          "pdl_env": os.environ.get("KERNEL_SEARCH_PDL", ""), "base": BASE,
                                          "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
