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
import datetime as dt
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.attn_bench import COLD_L2_FACTOR, copy_bandwidth, time_graph
from kernel_space.decode_attention import AttentionProblem, decode_attention, make_inputs
from qwen3.config import PRESETS

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
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    rows = []
    for model in args.models.split(","):
        c = PRESETS[model]
        for context in (int(x) for x in args.contexts.split(",")):
            for batch in (int(x) for x in args.batches.split(",")):
                problem = AttentionProblem(batch, c.num_attention_heads, c.num_key_value_heads, c.head_dim, context,
                                           "bfloat16")
                kv_bytes = 2 * batch * context * c.num_key_value_heads * c.head_dim * 2
                copies = max(2, math.ceil(COLD_L2_FACTOR * l2 / kv_bytes))
                gen = torch.Generator(device="cuda").manual_seed(0)
                base = [make_inputs(problem, "cuda", gen) for _ in range(copies)]
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
    args.out.write_text(json.dumps({"gpu": torch.cuda.get_device_name(0),
                                    "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
                                    "copy_bandwidth": bandwidth, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
