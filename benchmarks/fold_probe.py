"""The RMSNorm gain folded into the weight (issue 10): the norm sites' kernels with the gain loaded and
multiplied in the K loop (as tuned so far) against the same configs on a folded weight, where the
loop feeds the activation to the product as loaded and the norm is a row scale on the accumulator.
Inline configs with a K loop also run a third way: their sum of squares from a second read of the
activation after the loop (_gemm.FOLDED_SS_PASS) instead of from the tiles the loop loads.

Each config is checked against the fp64 reference (on the unfolded weight and gain) first, then timed
in CUDA graphs over weight copies > 4x L2 (tuner.measure), folded against gain in alternating replays,
beside cuBLAS's GEMM alone. The configs: the committed table's at the site, and tiles with a K loop.

    python benchmarks/fold_probe.py OUT.json [--cases qwen3-1.7b:rmsnorm_qkv:1,...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from benchmarks._probe import write_result
from kernel_space import _gemm, get_op
from kernel_space._common import TOLERANCE, fold_gain, rel_error
from qwen3.config import PRESETS
from tuner.measure import paired_speedup, rotation_inputs, time_graph

CASES = ("qwen3-1.7b:rmsnorm_qkv:1,qwen3-1.7b:rmsnorm_gate_up_silu:1,qwen3-1.7b:rmsnorm_qkv:8,"
         "qwen3-1.7b:rmsnorm_gate_up_silu:8,qwen3-8b:rmsnorm_qkv:1,qwen3-8b:rmsnorm_gate_up_silu:8,"
         "qwen3-0.6b:rmsnorm_qkv:1,qwen3-0.6b:rmsnorm_gate_up_silu:1")
TABLES = {"qwen3-0.6b": "benchmarks/results/dispatch_qwen3-0.6b_H100.json",
          "qwen3-8b": "benchmarks/results/dispatch_qwen3-8b_H100.json",
          "qwen3-1.7b": "benchmarks/results/session17_H100_2026-11-27/dispatch_qwen3-1.7b_H100.json"}
# (BLOCK_N, BLOCK_K, SPLIT_K, num_warps, num_stages), each with a K loop at K >= 2048
TILES = ((16, 128, 2, 2, 5), (32, 128, 2, 2, 5), (32, 256, 4, 4, 3))


def tile_config(tile) -> dict:
    bn, bk, split, warps, stages = tile
    return {"impl": "fused", "path": "dot", "BLOCK_M": 16, "BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": split,
            "split_reduce": "last_program" if split > 1 else "kernel", "num_warps": warps, "num_stages": stages,
            "GROUP_M": 1, "prologue": "inline"}


def table_config(model: str, op: str, m: int) -> dict | None:
    path = Path(TABLES.get(model, ""))
    if not path.is_file():
        return None
    for bucket in json.loads(path.read_text())["ops"].get(op, {}).get("buckets", []):
        if bucket["m"] == m and bucket["arm"] == "fused":
            return dict(bucket["config"])
    return None


def launcher(op: str):
    """(h, norm_w or None, w, cfg) -> output of the op's fused launcher."""
    from kernel_space.rmsnorm_gate_up_silu import rmsnorm_gate_up_silu
    from kernel_space.rmsnorm_qkv import rmsnorm_qkv
    return {"rmsnorm_qkv": rmsnorm_qkv, "rmsnorm_gate_up_silu": rmsnorm_gate_up_silu}[op]


def variant(op: str, cfg: dict, folded: bool, ss_pass: bool = False):
    run = launcher(op)

    def fn(i):
        _gemm.FOLDED_SS_PASS = ss_pass
        try:
            return (run(i["h"], None if folded else i["norm_w"], i["w"], cfg),)
        finally:
            _gemm.FOLDED_SS_PASS = False
    return fn


def check(spec, op: str, cfg: dict, m, n, k, folded: bool, ss_pass: bool) -> float:
    """Relative error against the fp64 reference on the unfolded weight and gain (raises past tolerance)."""
    gen = torch.Generator(device="cuda").manual_seed(1)
    i = spec.make_inputs(m, n, k, torch.bfloat16, "cuda", gen)
    ref = spec.reference(i)[0]
    if folded:
        i = {"h": i["h"], "norm_w": None, "w": fold_gain(i["w"], i["norm_w"])}
    err = rel_error(variant(op, cfg, folded, ss_pass)(i)[0], ref)
    if not err < TOLERANCE[torch.bfloat16]:
        raise AssertionError(f"relative error {err:.3g}")
    return err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--cases", default=CASES, help="model:op:M, comma separated")
    args = parser.parse_args()
    rows = []
    for case in args.cases.split(","):
        model, op, m = case.split(":")
        m = int(m)
        spec = get_op(op)
        n, k = spec.shape(PRESETS[model].dims())
        rot = rotation_inputs(spec, m, n, k, torch.bfloat16, "cuda", 0)
        cublas = time_graph(spec.cublas, rot).median_us
        configs = [("tile", tile_config(t)) for t in TILES]
        table = table_config(model, op, m)
        if table is not None:
            configs.insert(0, ("table", table))
        for source, base in configs:
            for prologue in ("inline", "prepass"):
                cfg = {**base, "prologue": prologue}
                loop = cfg["BLOCK_K"] * cfg["SPLIT_K"] < k
                row = {"model": model, "op": op, "m": m, "n": n, "k": k, "source": source, "config": cfg,
                       "cublas_us": cublas}
                try:
                    row["err_gain"] = check(spec, op, cfg, m, n, k, False, False)
                    row["err_folded"] = check(spec, op, cfg, m, n, k, True, False)
                    ratio, t_fold, t_gain = paired_speedup(variant(op, cfg, True), variant(op, cfg, False), rot)
                    row.update(gain_us=t_gain.median_us, folded_us=t_fold.median_us, folded_vs_gain=ratio)
                    if loop and prologue == "inline":
                        row["err_folded_pass"] = check(spec, op, cfg, m, n, k, True, True)
                        ratio, t_pass, _ = paired_speedup(variant(op, cfg, True, True), variant(op, cfg, False), rot)
                        row.update(folded_pass_us=t_pass.median_us, folded_pass_vs_gain=ratio)
                except Exception as e:  # a config that cannot compile or run is a row
                    row["error"] = f"{type(e).__name__}: {str(e)[-300:]}"
                rows.append(row)
                tag = (f"{model} {op} M={m} {source} BN={cfg['BLOCK_N']} BK={cfg['BLOCK_K']} split={cfg['SPLIT_K']} "
                       f"w={cfg['num_warps']} s={cfg['num_stages']} {prologue}")
                if "error" in row:
                    print(f"{tag}: {row['error']}", flush=True)
                    continue
                extra = (f", folded+pass {row['folded_pass_us']:.2f} ({row['folded_pass_vs_gain']:.3f}x)"
                         if "folded_pass_us" in row else "")
                print(f"{tag}: gain {row['gain_us']:.2f} us, folded {row['folded_us']:.2f} "
                      f"({row['folded_vs_gain']:.3f}x){extra}, cuBLAS alone {cublas:.2f}", flush=True)
    write_result(args.out, rows=rows)


if __name__ == "__main__":
    main()
