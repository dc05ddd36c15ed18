"""Is there a better GEMM config than the table's? Many configs of one site at one M, next to cuBLAS.

    KERNEL_SEARCH_PDL=0 python benchmarks/gemm_probe.py --models qwen3-8b --ms 1,32 \
        --table qwen3-8b=benchmarks/results/dispatch_qwen3-8b_H100.json --samples 40 --out DIR

For every (model, GEMM site, M), the configs measured are:
- `committed`: the table's config at M;
- `neighbour`: the table's configs of the same site at the other M buckets, each also with GROUP_M = 8
  where its BLOCK_M is below M (the M tiles that share a weight tile then run side by side, so the
  weight is read from memory once and from L2 after; GROUP_M = 1 reads it once per M tile);
- `sampled`: --samples configs drawn from the space (tuner.candidates.sample_configs);
- `wide_m` (with --wide-m): --samples configs of the dot path with BLOCK_M = 64 at M < 64. Triton
  runs a dot of 64 rows or more as Hopper's warpgroup MMA (wgmma), of fewer rows as mma.sync: this
  asks whether the wider instruction streams better despite the padding. It did at M = 32 (session
  10), so the space now offers that tile at 16 < M < 64; at M <= 16 it still refuses it (a tile
  beyond the padded M), and the check is relaxed for these configs in this process only.
Measured as the tuner measures (correct first, CUDA graph, weights cold in L2, median). Run with
KERNEL_SEARCH_PDL=0 to time each op without its overlap with itself. Writes gemm_probe_<GPU>_<date>.json
with every config's time and, per case, the best of each kind and cuBLAS's GEMM alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kernel_space as ks
import kernel_space.spec as spec_module
from kernel_space.spec import Problem
from qwen3.config import resolve_model
from storage.table import load_table
from tuner import measure
from tuner.candidates import sample_configs
from tuner.compile import precompile
from tuner.trial import run_trial

GEMM_OPS = ("rmsnorm_qkv", "o_proj_residual", "rmsnorm_gate_up_silu", "down_residual")
KINDS = ("committed", "neighbour", "sampled", "wide_m")
WIDE_M_GRID = {"BLOCK_N": (32, 64, 128), "BLOCK_K": (64, 128, 256), "SPLIT_K": (1, 2, 4), "num_warps": (4, 8),
               "num_stages": (2, 3, 4, 5), "prologue": ("inline", "prepass"), "GROUP_M": (1,)}


def table_configs(path: str | None) -> dict:
    """{op: {m: config}} of a dispatch table's fused rows (the table checked as the runtime loads it)."""
    if not path:
        return {}
    return {op: {b.m: dict(b.config) for b in entry.buckets if b.arm == "fused"}
            for op, entry in load_table(path).ops.items()}


def neighbours(by_m: dict, m: int) -> list[dict]:
    """The other buckets' configs, each also with GROUP_M = 8 where its BLOCK_M leaves several M tiles."""
    out = []
    for other, cfg in sorted(by_m.items()):
        if other == m:
            continue
        out.append(cfg)
        if cfg["BLOCK_M"] < m and cfg.get("GROUP_M") != 8:
            out.append(dict(cfg, GROUP_M=8))
    return out


def wide_m_configs(op: str, m: int, n: int, k: int, elem: int, count: int, seed: int) -> list[dict]:
    """Up to `count` valid dot-path configs with BLOCK_M = 64 (none at M >= 64, where the space has them)."""
    if m >= 64:
        return []
    rng, out, spec = random.Random(seed), [], ks.get_op(op)
    grid = [dict(zip(WIDE_M_GRID, combo, strict=True)) for combo in itertools.product(*WIDE_M_GRID.values())]
    rng.shuffle(grid)
    for g in grid:
        cfg = {"impl": "fused", "path": "dot", "BLOCK_M": 64, "split_reduce": "last_program" if g["SPLIT_K"] > 1
               else "kernel", **g}
        if not spec.norm:
            cfg["prologue"] = "inline"
        if cfg not in out and spec.check(cfg, m, n, k, elem) is None:
            out.append(cfg)
        if len(out) == count:
            break
    return out


def _relax_block_m() -> None:
    """Let BLOCK_M = 64 pass check_config at any M on the dot path (this process only)."""
    strict = spec_module.block_range

    def relaxed(param, path, m, n_out, k):
        low, high = strict(param, path, m, n_out, k)
        return (low, max(high, 64)) if param == "BLOCK_M" and path == "dot" else (low, high)

    spec_module.block_range = relaxed


def plan_case(op: str, m: int, n: int, k: int, elem: int, by_m: dict, samples: int, seed: int,
              wide_m: bool = False) -> list[tuple]:
    """[(kind, config)] of one case, each config once (the first kind that names it)."""
    seen, out = set(), []
    committed = [by_m[m]] if m in by_m else []
    sampled = sample_configs(op, m, n, k, elem, samples, seed=seed)
    wide = wide_m_configs(op, m, n, k, elem, samples, seed) if wide_m else []
    for kind, cfgs in zip(KINDS, (committed, neighbours(by_m, m), sampled, wide), strict=True):
        for cfg in cfgs:
            key = ks.config_key(cfg)
            if key not in seen and ks.get_op(op).check(cfg, m, n, k, elem) is None:
                seen.add(key)
                out.append((kind, cfg))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="qwen3-8b")
    p.add_argument("--ops", default=",".join(GEMM_OPS))
    p.add_argument("--ms", default="1,8,32")
    p.add_argument("--samples", type=int, default=20, help="configs drawn from the space per (op, M)")
    p.add_argument("--table", action="append", default=[], metavar="MODEL=FILE")
    p.add_argument("--wide-m", action="store_true", help="also BLOCK_M = 64 dot configs at M < 64 (see above)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.environ.get("OUT", "benchmarks/results"))
    args = p.parse_args(argv)
    on_gpu = torch.cuda.is_available()
    device = "cuda" if on_gpu else "cpu"
    dtype = torch.bfloat16 if on_gpu else torch.float32
    tables = dict(spec.split("=", 1) for spec in args.table)
    if args.wide_m:
        _relax_block_m()
    name = torch.cuda.get_device_name(0) if on_gpu else "cpu"
    print(f"{name}: PDL {'off' if os.environ.get('KERNEL_SEARCH_PDL') == '0' else 'on'}", flush=True)
    rows, t_start = [], time.perf_counter()
    for model in args.models.split(","):
        shapes = ks.op_shapes(resolve_model(model).dims())
        table = table_configs(tables.get(model))
        plan = {(op, m): plan_case(op, m, *shapes[op], dtype.itemsize, table.get(op, {}), args.samples, args.seed,
                                 args.wide_m)
                for op in args.ops.split(",") for m in (int(x) for x in args.ms.split(","))}
        if on_gpu:
            jobs = [(Problem(op, m, *shapes[op], str(dtype).removeprefix("torch.")), c)
                    for (op, m), cs in plan.items() for _, c in cs]
            t0 = time.perf_counter()
            failed = sum(1 for _, err in precompile(jobs) if err)
            print(f"{model}: compiled {len(jobs)} configs in {time.perf_counter() - t0:.0f}s ({failed} failed)",
                  flush=True)
        for (op, m), cs in plan.items():
            rows.append(_case(model, op, m, *shapes[op], dtype, device, cs, args.seed))
            _print(rows[-1])
    result = {"gpu": name, "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
              "pdl": os.environ.get("KERNEL_SEARCH_PDL", "1") != "0", "wall_s": time.perf_counter() - t_start,
              "tables": tables, "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"gemm_probe_{name.replace(' ', '_')}_{result['date']}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
    return 0


def _case(model, op, m, n, k, dtype, device, cfgs, seed) -> dict:
    spec = ks.get_op(op)
    rotation = measure.rotation_inputs(spec, m, n, k, dtype, device, seed=seed)
    problem = Problem(op, m, n, k, str(dtype).removeprefix("torch."))
    cublas = run_trial(problem, "cublas", None, device, rotation, seed + 1)
    trials = []
    for i, (kind, c) in enumerate(cfgs):
        t = run_trial(problem, "fused", c, device, rotation, seed + 2 + i)
        trials.append({"kind": kind, "config": c, "status": t.status, "us": t.median_us, "rel_error": t.rel_error,
                       "reason": t.reason})
    del rotation
    if device == "cuda":
        torch.cuda.empty_cache()
    row = {"model": model, "op": op, "m": m, "n": n, "k": k, "cublas_us": cublas.median_us, "trials": trials}
    for kind in KINDS:
        ok = [t for t in trials if t["kind"] == kind and t["status"] == "ok"]
        best = min(ok, key=lambda t: t["us"], default=None)
        row[f"{kind}_us"] = best["us"] if best else None
        row[f"{kind}_config"] = best["config"] if best else None
    return row


def _print(r: dict) -> None:
    def f(x):
        return f"{x:8.2f}" if x is not None else "     n/a"
    best = min((r[f"{k}_us"], k) for k in KINDS if r[f"{k}_us"] is not None) if any(
        r[f"{k}_us"] for k in KINDS) else (None, "-")
    cfg = ks.config_key(r[f"{best[1]}_config"]) if best[0] is not None else "-"
    print(f"{r['model']:10s} {r['op']:21s} M={r['m']:3d} cublas {f(r['cublas_us'])} | committed "
          f"{f(r['committed_us'])} neighbour {f(r['neighbour_us'])} sampled {f(r['sampled_us'])} wide_m "
          f"{f(r['wide_m_us'])} | best: {cfg}",
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
