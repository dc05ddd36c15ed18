"""Sweep decode_attention's launch parameters on the GPU: per model shape and batch, the time of one
layer's attention (CUDA graph of one launch per layer over distinct caches, as a decode step runs
them; PDL as in the model; median of 20 replays). Prints one JSON line per variant.

    python3 benchmarks/attn_sweep.py --length 256 --position 192 --json out.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics

import torch

from qwen3.kernels import decode_attention

SHAPES = {"qwen3-0.6b": (16, 8, 128, 28), "qwen3-8b": (32, 8, 128, 36)}  # heads, kv heads, head_dim, layers


def time_variant(heads, kv, hd, layers, batch, length, position, **kw) -> float:
    caches = [(torch.randn(batch, length, kv, hd, device="cuda", dtype=torch.bfloat16),
               torch.randn(batch, length, kv, hd, device="cuda", dtype=torch.bfloat16)) for _ in range(layers)]
    q = torch.randn(batch, 1, heads, hd, device="cuda", dtype=torch.bfloat16)
    pos = torch.full((batch, 1), position, device="cuda")
    ref = decode_attention(q, *caches[0], pos, hd**-0.5)
    check = decode_attention(q, *caches[0], pos, hd**-0.5, **kw)
    torch.testing.assert_close(check, ref, atol=2e-2, rtol=2e-2)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for k, v in caches:
            decode_attention(q, k, v, pos, hd**-0.5, **kw)
    times = []
    for _ in range(20):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000 / layers)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--position", type=int, default=192)
    parser.add_argument("--batch", default="1,8,32")
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []
    for (model, (heads, kv, hd, layers)), batch in itertools.product(SHAPES.items(), map(int, args.batch.split(","))):
        for chunk, block_n, warps, stages in itertools.product((64, 128, 256), (32, 64, 128), (2, 4, 8), (1, 2)):
            if chunk % block_n:
                continue
            kw = dict(chunk=chunk, block_n=block_n, num_warps=warps, num_stages=stages)
            try:
                us = time_variant(heads, kv, hd, layers, batch, args.length, args.position, **kw)
            except Exception as exc:
                us, kw["error"] = None, f"{type(exc).__name__}: {str(exc)[:120]}"
            row = {"model": model, "batch": batch, "length": args.length, "position": args.position, **kw, "us": us}
            rows.append(row)
        best = min((r for r in rows if r["model"] == model and r["batch"] == batch and r["us"]), key=lambda r: r["us"])
        print(json.dumps(best), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
