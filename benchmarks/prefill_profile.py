"""Where a prefill's time goes, ours against the torch.compile peer's, kernel by kernel.

For each cell (batch x context, all prompts in one forward), on random bf16 weights: the runtime's
prefill path (eager: the kernels a graph would replay) and the gpt-fast-style peer's prefill compiled
by torch.compile (benchmarks/gptfast_qwen3.py), each timed (CUDA events, median of --repeats, after a
warm-up that compiles; ours also replayed as a CUDA graph where the runtime would, up to
PREFILL_GRAPH_TOKENS tokens), then profiled once with torch.profiler: the GPU time of each kernel
name, summed, largest first.

    python3 benchmarks/prefill_profile.py --model qwen3-0.6b --cells 8x2048,32x256 --out prof.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gptfast_qwen3 import Peer, prefill, release_compiled
from qwen3.bench import random_prompts, release_kv_cache
from qwen3.config import PRESETS
from qwen3.generate import PREFILL_GRAPH_TOKENS
from qwen3.loader import random_weights


def timed(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def kernels(fn, top: int) -> list[dict]:
    """GPU microseconds per kernel name over one call of fn, largest first."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    sums: dict[str, list] = {}
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            entry = sums.setdefault(event.name, [0.0, 0])
            entry[0] += event.device_time_total if hasattr(event, "device_time_total") else event.cuda_time_total
            entry[1] += 1
    rows = [{"kernel": name, "us": round(us, 1), "calls": n} for name, (us, n) in sums.items()]
    rows.sort(key=lambda r: -r["us"])
    total = sum(r["us"] for r in rows)
    return [{"kernel": "(all)", "us": round(total, 1), "calls": sum(r["calls"] for r in rows)}] + rows[:top]


@torch.inference_mode()
def cell(model, batch: int, context: int, repeats: int, top: int) -> dict:
    c = model.config
    prompts = random_prompts(batch, context, c.vocab_size, 0, model.device)
    positions = torch.arange(context, device=model.device).expand(batch, context)
    model.allocate_kv_cache(batch, context + 8)

    def ours():
        hidden = model(prompts, positions, 0, from_start=True)
        return model.compute_logits(hidden.view(batch, context, -1)[:, -1].contiguous())

    out = {"batch": batch, "context": context, "ours_ms": timed(ours, repeats)}
    # The runtime replays a prompt of up to PREFILL_GRAPH_TOKENS tokens as a CUDA graph (qwen3.generate),
    # so eager launches do not count there: the same forward captured once, then replayed.
    if batch * context <= PREFILL_GRAPH_TOKENS:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            ours()
        out["ours_graph_ms"] = timed(graph.replay, repeats)
        del graph
    out["ours"] = kernels(ours, top)
    release_kv_cache(model)
    peer = Peer.from_qwen3(model)
    try:
        peer.setup_caches(batch, context + 8)
        pre = torch.compile(prefill, fullgraph=True, dynamic=False)
        rows = torch.arange(batch, device=model.device)
        out["peer_ms"] = timed(lambda: pre(peer, prompts, rows), repeats)
        out["peer"] = kernels(lambda: pre(peer, prompts, rows), top)
    finally:
        peer.free_caches()
        release_compiled()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="qwen3-0.6b", choices=sorted(PRESETS))
    p.add_argument("--cells", default="8x2048,32x256", help="BATCHxCONTEXT, comma separated")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--top", type=int, default=14)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    model = random_weights(PRESETS[args.model], torch.bfloat16, "cuda", 0)
    result = {"gpu": torch.cuda.get_device_name(0), "date": dt.date.today().isoformat(), "model": args.model,
              "cells": []}
    for spec in args.cells.split(","):
        batch, context = (int(x) for x in spec.lower().split("x"))
        row = cell(model, batch, context, args.repeats, args.top)
        result["cells"].append(row)
        Path(args.out).write_text(json.dumps(result, indent=1))
        graph = f" (CUDA graph {row['ours_graph_ms']:.2f} ms)" if "ours_graph_ms" in row else ""
        print(f"{args.model} batch {batch} x {context}: ours {row['ours_ms']:.2f} ms{graph}, torch.compile "
              f"{row['peer_ms']:.2f} ms")
        for side in ("ours", "peer"):
            for r in row[side][:10]:
                print(f"  {side:4s} {r['us'] / 1000:8.2f} ms {r['calls']:5d}x  {r['kernel'][:90]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
