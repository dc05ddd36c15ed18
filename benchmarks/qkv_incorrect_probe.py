"""Why some rmsnorm_qkv configs fail the correctness check on the GPU: the configs every distributed run
since the twenty-first session refused (path=dot, BLOCK_M 128, BLOCK_N 128, BLOCK_K 64, 8 warps, split-K
4 or 8 reduced by the last program, prologue inline; rel error 0.014-0.024 against 0.01) and their
neighbours, one setting changed at a time, each run several times on fresh inputs. Where a config fails,
where the error sits: per output tile, and per row and column inside the tiles.

    python -m benchmarks.qkv_incorrect_probe --out probe.json [--unroll 262144]

--unroll sets _gemm.REDUCE_UNROLL_ELEMS before anything compiles (run it with its own Triton cache)."""

from __future__ import annotations

import argparse
import datetime as dt
import json

import torch

import kernel_space as ks
from kernel_space import _gemm
from kernel_space._common import TOLERANCE, rel_error
from qwen3.config import PRESETS

BASE = {"path": "dot", "BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "SPLIT_K": 8, "GROUP_M": 1, "num_warps": 8,
        "num_stages": 3, "split_reduce": "last_program", "prologue": "inline"}
CHANGES = [{}, {"split_reduce": "kernel"}, {"SPLIT_K": 1, "split_reduce": "kernel"}, {"SPLIT_K": 2}, {"SPLIT_K": 4},
           {"num_warps": 4}, {"num_stages": 1}, {"num_stages": 2}, {"num_stages": 4}, {"BLOCK_M": 64},
           {"BLOCK_N": 64}, {"BLOCK_K": 32}, {"BLOCK_K": 128}, {"prologue": "prepass"}, {"prologue": "rescan"},
           {"BLOCK_M": 64, "BLOCK_N": 64}, {"SPLIT_K": 1, "split_reduce": "kernel", "num_stages": 1}]


def tile_errors(out: torch.Tensor, ref: torch.Tensor, bm: int, bn: int) -> dict:
    """Where the error sits: ||out - ref|| / ||ref|| per (BLOCK_M, BLOCK_N) tile, and the error's share
    by row and by column inside a tile (summed over tiles)."""
    m, n = ref.shape
    err = (out.double() - ref.double()).pow(2)
    den = ref.double().pow(2)
    tm, tn = -(-m // bm), -(-n // bn)
    pad = (0, tn * bn - n, 0, tm * bm - m)
    e = torch.nn.functional.pad(err, pad).view(tm, bm, tn, bn)
    d = torch.nn.functional.pad(den, pad).view(tm, bm, tn, bn)
    per_tile = (e.sum((1, 3)) / d.sum((1, 3)).clamp_min(1e-300)).sqrt()
    bad = (per_tile > 0.01).nonzero().tolist()
    rows = e.sum((0, 2, 3)) / e.sum()
    cols = e.sum((0, 1, 2)) / e.sum()
    return {"tiles": [tm, tn], "bad_tiles": bad[:40], "bad_count": len(bad),
            "worst_tile": per_tile.max().item(), "median_tile": per_tile.median().item(),
            "row_share_top": sorted(((round(v, 4), i) for i, v in enumerate(rows.tolist())), reverse=True)[:8],
            "col_share_top": sorted(((round(v, 4), i) for i, v in enumerate(cols.tolist())), reverse=True)[:8]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default="qwen3-0.6b")
    ap.add_argument("--ms", default="128,256")
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--unroll", type=int, default=0, help="REDUCE_UNROLL_ELEMS (0: as shipped)")
    ap.add_argument("--dtypes", default="bfloat16,float16")
    ap.add_argument("--first", type=int, default=len(CHANGES), help="only the first N changes")
    args = ap.parse_args()
    if args.unroll:
        _gemm.REDUCE_UNROLL_ELEMS = _gemm.tl.constexpr(args.unroll)
    spec = ks.get_op("rmsnorm_qkv")
    n, k = spec.shape(PRESETS[args.model].dims())
    rows = []
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        for m in [int(x) for x in args.ms.split(",")]:
            for change in CHANGES[:args.first]:
                cfg = {**BASE, **change}
                row = {"dtype": dtype_name, "m": m, "n": n, "k": k, "change": change, "errors": []}
                try:
                    for rep in range(args.repeats):
                        gen = torch.Generator(device="cuda").manual_seed(1000 * rep + m)
                        inputs = spec.make_inputs(m, n, k, dtype, "cuda", gen)
                        out = spec.fused(inputs, cfg)[0]
                        torch.cuda.synchronize()
                        ref = spec.reference(inputs)[0]
                        err = rel_error(out, ref)
                        row["errors"].append(err)
                        if err > TOLERANCE[dtype] and "where" not in row:
                            row["where"] = tile_errors(out, ref, cfg["BLOCK_M"], cfg["BLOCK_N"])
                            again = spec.fused(inputs, cfg)[0]
                            row["same_twice"] = bool(torch.equal(out, again))
                except Exception as exc:  # a probe: record it and go on
                    row["error"] = f"{type(exc).__name__}: {exc}"[:300]
                row["fails"] = sum(e > TOLERANCE[dtype] for e in row["errors"])
                rows.append(row)
                print(dtype_name, m, change, "fails", row["fails"], [f"{e:.4f}" for e in row["errors"]],
                      row.get("error", ""), flush=True)
    result = {"gpu": torch.cuda.get_device_name(), "date": dt.date.today().isoformat(), "model": args.model,
              "base": BASE, "unroll": args.unroll or int(_gemm.REDUCE_UNROLL_ELEMS), "rows": rows}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
