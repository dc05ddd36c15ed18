"""The inline RMSNorm on the tl.dot path with a K loop: its sum of squares reduced a row every step (the
kernel before the seventeenth session) or kept as a tile and reduced once after the loop
(_gemm.SS_TILE, now the default). The same configs both ways, in alternating CUDA-graph replays over
weight copies > 4x L2 (tuner.measure.paired_speedup), beside the same tile with the norm in a pre-pass
kernel and cuBLAS's GEMM alone.

In the Qwen3-1.7B tune of this session, a config of this kind took 23.3 us at rmsnorm_qkv M = 1 where
the same tile with the pre-pass took 10.4.

    python benchmarks/ss_tile_probe.py OUT.json [--cases qwen3-1.7b:rmsnorm_qkv:1,...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks._probe import write_result
from kernel_space import _gemm, get_op
from qwen3.config import PRESETS
from tuner.measure import check_correct, paired_speedup, rotation_inputs, time_graph

CASES = ("qwen3-1.7b:rmsnorm_qkv:1,qwen3-1.7b:rmsnorm_gate_up_silu:1,qwen3-1.7b:rmsnorm_qkv:8,"
         "qwen3-8b:rmsnorm_qkv:1,qwen3-8b:rmsnorm_gate_up_silu:8")
# (BLOCK_N, BLOCK_K, SPLIT_K, num_warps, num_stages), all with a K loop at these K
TILES = ((16, 128, 2, 2, 5), (32, 128, 2, 2, 5), (64, 128, 4, 4, 4), (16, 256, 2, 4, 3))


def config(tile, prologue: str) -> dict:
    bn, bk, split, warps, stages = tile
    return {"impl": "fused", "path": "dot", "BLOCK_M": 16, "BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": split,
            "split_reduce": "last_program" if split > 1 else "kernel", "num_warps": warps, "num_stages": stages,
            "GROUP_M": 1, "prologue": prologue}


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
        for tile in TILES:
            inline, prepass = config(tile, "inline"), config(tile, "prepass")

            def run(flag, cfg=inline, spec=spec):
                def fn(i):
                    _gemm.SS_TILE = flag
                    return spec.fused(i, cfg)
                return fn

            row = {"model": model, "op": op, "m": m, "n": n, "k": k, "config": inline, "cublas_us": cublas}
            try:
                for flag in (True, False):
                    _gemm.SS_TILE = flag
                    check_correct(spec, "fused", inline, m, n, k, torch.bfloat16, "cuda", 0)
                ratio, t_tile, t_row = paired_speedup(run(True), run(False), rot)
                row.update(tile_us=t_tile.median_us, row_us=t_row.median_us, tile_vs_row=ratio,
                           prepass_us=time_graph(lambda i, s=spec, c=prepass: s.fused(i, c), rot).median_us)
            except Exception as e:  # a config that cannot compile or run is a row
                row["error"] = f"{type(e).__name__}: {str(e)[-300:]}"
            finally:
                _gemm.SS_TILE = True
            rows.append(row)
            print(f"{model} {op} M={m} BN={tile[0]} BK={tile[1]} split={tile[2]} w={tile[3]} s={tile[4]}: "
                  + (row.get("error") or f"tile {row['tile_us']:.2f} us, per-step row sums {row['row_us']:.2f} "
                     f"({row['tile_vs_row']:.2f}x), pre-pass {row['prepass_us']:.2f}, cuBLAS alone {cublas:.2f}"),
                  flush=True)
    write_result(args.out, rows=rows)


if __name__ == "__main__":
    main()
