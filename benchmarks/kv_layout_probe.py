"""Does the KV cache's layout limit decode attention at batch 1? The same kernel and plan over the
runtime's slot-major cache and over a head-major one.

    python3 benchmarks/kv_layout_probe.py OUT.json [--batches 1,8] [--contexts 8192,32768]

The runtime's cache is [rows, L, kv_heads, head_dim] (slot-major): a program of one KV head reads
head_dim values (256 bytes in bf16) of every slot, at a stride of kv_heads * head_dim. A head-major
cache ([rows, kv_heads, L, head_dim], as gpt-fast keeps it) makes that program's reads one contiguous
range. The kernel takes the caches' strides, so a permuted view of a head-major tensor runs it
unchanged: this times attention_plan's config over both (outputs compared first), as attn_bench.py
times (KV cold in L2, one CUDA graph, median), at Qwen3-0.6B and 8B head shapes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._probe import attention_cell, cold_inputs, write_result
from benchmarks.attn_bench import copy_bandwidth, time_graph
from kernel_space.decode_attention import decode_attention

LAYOUTS = ("slot_major", "head_major")


def as_layout(cache: torch.Tensor, layout: str) -> torch.Tensor:
    """cache [rows, L, KV, hd] with the same values, stored slot-major (as it is) or head-major."""
    if layout == "slot_major":
        return cache
    return cache.permute(0, 2, 1, 3).contiguous().permute(0, 2, 1, 3)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--models", default="qwen3-0.6b,qwen3-8b")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--contexts", default="8192,32768")
    args = p.parse_args(argv)
    bandwidth = copy_bandwidth()
    rows = []
    for model in args.models.split(","):
        for context in (int(x) for x in args.contexts.split(",")):
            for batch in (int(x) for x in args.batches.split(",")):
                problem = attention_cell(model, batch, context)
                kv_bytes = problem.kv_bytes()
                base = cold_inputs(problem)
                outs = {}
                for layout in LAYOUTS:
                    rotation = [{**i, "k_cache": as_layout(i["k_cache"], layout),
                                 "v_cache": as_layout(i["v_cache"], layout)} for i in base]
                    outs[layout] = decode_attention(**rotation[0]).float()
                    median, p20, p80 = time_graph(decode_attention, rotation)
                    floor = kv_bytes / bandwidth * 1e6
                    rows.append({"model": model, "batch": batch, "context": context, "layout": layout,
                                 "median_us": median, "p20_us": p20, "p80_us": p80, "floor_us": floor,
                                 "of_floor": floor / median})
                    print(f"{model:10s} b{batch:<3d} ctx {context:6d} {layout:10s} {median:7.1f} us "
                          f"({floor / median:4.0%} of the copy bandwidth)", flush=True)
                    del rotation
                diff = (outs["slot_major"] - outs["head_major"]).abs().max().item()
                rows[-1]["max_abs_diff_vs_slot_major"] = diff
                if diff > 1e-2:
                    print(f"  outputs differ by {diff:.3g}", flush=True)
                del base, outs
                torch.cuda.empty_cache()
    write_result(args.out, copy_bandwidth=bandwidth, rows=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
