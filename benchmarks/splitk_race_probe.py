"""Is a split-K GEMM reduced by its last program (split_reduce=last_program) the same as one reduced by
the second kernel? Both sum a tile's partials in the same order, so on the same inputs their outputs
must be equal bit for bit; any difference is the last-program path going wrong (the twenty-fourth
session's qkv_incorrect_probe.py found configs whose errors change from run to run).

    python -m benchmarks.splitk_race_probe --out race.json --tables T.json ... [--repeats 20]
    python -m benchmarks.splitk_race_probe --out grid.json --grid [--repeats 8]
    python -m benchmarks.splitk_race_probe --out rings.json --rings [--repeats 6]

--tables: every GEMM row of each dispatch table with split_reduce=last_program, at its M. --grid:
rmsnorm_qkv (0.6B) at M = 128 and 256, path=dot, 128 x 128 tiles, BLOCK_K 64, over warps x stages x
SPLIT_K. --rings (twenty-eighth session): both norm ops at tensor-core tiles of 64 and 128 rows with a K
loop, each prologue (inline, rescan, prepass) at 2 and 3 stages, reduced by the last program; the
inline prologue's activation ring is one shared-memory buffer short there (spec.inline_ring_short), so
whether its errors show with either reduction is what this measures; rescan and prepass are the
controls."""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
from pathlib import Path

import torch

import kernel_space as ks
from benchmarks.qkv_incorrect_probe import BASE
from kernel_space._common import rel_error
from qwen3.config import PRESETS

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # the CPU: a smoke run under the interpreter


def compare(op: str, m: int, n: int, k: int, cfg: dict, repeats: int, dtype=torch.bfloat16) -> dict:
    """Run cfg with last_program and with the kernel reduce on `repeats` fresh inputs: how many differ."""
    spec = ks.get_op(op)
    kernel_cfg = {**cfg, "split_reduce": "kernel"}
    row = {"op": op, "m": m, "n": n, "k": k, "config": cfg, "differ": 0, "max_abs": 0.0, "rel_last": [],
           "rel_kernel": []}
    try:
        for rep in range(repeats):
            gen = torch.Generator(device=DEVICE).manual_seed(7919 * rep + m)
            inputs = spec.make_inputs(m, n, k, dtype, DEVICE, gen)
            last = spec.fused(inputs, cfg)[0]
            kern = spec.fused(inputs, kernel_cfg)[0]
            if not torch.equal(last, kern):
                row["differ"] += 1
                row["max_abs"] = max(row["max_abs"], (last.float() - kern.float()).abs().max().item())
            ref = spec.reference(inputs)[0]  # every run: is either reduction wrong (--rings asks)
            row["rel_last"].append(rel_error(last, ref))
            row["rel_kernel"].append(rel_error(kern, ref))
    except Exception as exc:  # a probe: record it and go on
        row["error"] = f"{type(exc).__name__}: {exc}"[:300]
    return row


def table_cases(path: Path):
    table = json.loads(path.read_text())
    for op, entry in table["ops"].items():
        if ks.get_op(op).kind == "attention":
            continue
        for bucket in entry.get("buckets", []):
            cfg = bucket.get("config") or {}
            if bucket.get("arm") == "fused" and cfg.get("SPLIT_K", 1) > 1 and cfg.get("split_reduce") == "last_program":
                yield op, bucket["m"], entry["N"], entry["K"], cfg


def grid_cases():
    n, k = ks.get_op("rmsnorm_qkv").shape(PRESETS["qwen3-0.6b"].dims())
    base = {**BASE, "impl": "fused"}  # the refused config; warps, stages and SPLIT_K vary below
    for warps, stages, split in itertools.product((4, 8), (2, 3, 4), (2, 4, 8)):
        for m in (128, 256):
            yield "rmsnorm_qkv", m, n, k, {**base, "num_warps": warps, "num_stages": stages, "SPLIT_K": split}
    for bm, bn in ((64, 128), (128, 64), (64, 64)):
        yield "rmsnorm_qkv", 128, n, k, {**base, "BLOCK_M": bm, "BLOCK_N": bn, "num_warps": 8, "num_stages": 3,
                                         "SPLIT_K": 8}


def ring_cases():
    dims = PRESETS["qwen3-0.6b"].dims()
    base = {"impl": "fused", "path": "dot", "BLOCK_K": 64, "SPLIT_K": 4, "GROUP_M": 1,
            "split_reduce": "last_program"}
    for op in ("rmsnorm_qkv", "rmsnorm_gate_up_silu"):
        n, k = ks.get_op(op).shape(dims)
        for m, bm, bn, warps in ((32, 64, 64, 4), (256, 128, 128, 8), (256, 64, 128, 4)):
            for stages, prologue in itertools.product((2, 3), ("inline", "rescan", "prepass")):
                yield op, m, n, k, {**base, "BLOCK_M": bm, "BLOCK_N": bn, "num_warps": warps, "num_stages": stages,
                                    "prologue": prologue}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--tables", nargs="*", type=Path, default=[])
    ap.add_argument("--grid", action="store_true")
    ap.add_argument("--rings", action="store_true")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    cases = (list(grid_cases()) if args.grid else list(ring_cases()) if args.rings
             else [c for t in args.tables for c in table_cases(t)])
    rows = []
    for op, m, n, k, cfg in cases:
        row = compare(op, m, n, k, cfg, args.repeats)
        rows.append(row)
        brief = ",".join(f"{key}={cfg[key]}" for key in ("path", "BLOCK_M", "BLOCK_N", "BLOCK_K", "SPLIT_K",
                                                           "num_warps", "num_stages", "prologue") if key in cfg)
        worst = max(row["rel_last"], default=float("nan"))
        worst_kernel = max(row["rel_kernel"], default=float("nan"))
        print(f"{op:22s} M={m:4d} {brief}: differ {row['differ']}/{args.repeats} max_abs {row['max_abs']:.3g} "
              f"rel_last<= {worst:.4f} rel_kernel<= {worst_kernel:.4f} {row.get('error', '')}", flush=True)
    gpu = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu"
    Path(args.out).write_text(json.dumps({"gpu": gpu, "date": dt.date.today().isoformat(), "repeats": args.repeats,
                                          "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
