"""How much a folded RMSNorm gain could save at the norm sites where the tune picks the pre-pass: the
shipped config as it runs (pre-pass kernel, then the GEMM) against the same GEMM tile alone (what a
loop fed x as loaded would at best approach; the sum of squares not included) and cuBLAS's GEMM alone.
Weights cold in L2 (tuner.measure.rotation_inputs), CUDA graph, median.

    python benchmarks/fold_bound_probe.py OUT.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from benchmarks._probe import write_result
from kernel_space import _gemm, get_op
from qwen3.config import PRESETS
from tuner.measure import rotation_inputs, time_graph

R = Path(__file__).resolve().parent / "results"
CASES = (("qwen3-1.7b", "rmsnorm_qkv", R / "session17_H100_2026-11-27/dispatch_qwen3-1.7b_H100.json"),
         ("qwen3-1.7b", "rmsnorm_gate_up_silu", R / "session17_H100_2026-11-27/dispatch_qwen3-1.7b_H100.json"),
         ("qwen3-8b", "rmsnorm_qkv", R / "dispatch_qwen3-8b_H100.json"),
         ("qwen3-8b", "rmsnorm_gate_up_silu", R / "dispatch_qwen3-8b_H100.json"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--m", type=int, default=1)
    args = parser.parse_args()
    rows = []
    for model, op, table in CASES:
        spec = get_op(op)
        n, k = spec.shape(PRESETS[model].dims())
        bucket = next(b for b in json.loads(table.read_text())["ops"][op]["buckets"] if b["m"] == args.m)
        cfg = {key: bucket["config"][key] for key in spec.space.values if key in bucket["config"]}
        rot = rotation_inputs(spec, args.m, n, k, torch.bfloat16, "cuda", 0)
        shipped = time_graph(lambda i, c=cfg, s=spec: s.fused(i, c), rot).median_us
        gemm = time_graph(lambda i, c=cfg, s=spec: _gemm.launch_fused_linear(i["h"], i["w"], c, gated=s.gated),
                          rot).median_us
        cublas = time_graph(spec.cublas, rot).median_us
        rows.append({"model": model, "op": op, "m": args.m, "config": cfg, "shipped_us": shipped,
                     "gemm_alone_us": gemm, "cublas_us": cublas})
        print(f"{model} {op} M={args.m} ({cfg['prologue']}): as shipped {shipped:.2f} us, its GEMM alone {gemm:.2f}, "
              f"cuBLAS alone {cublas:.2f}", flush=True)
    write_result(args.out, rows=rows)


if __name__ == "__main__":
    main()
