"""A CUDA-graph decode step's kernels on the GPU's clock: when each starts and ends, as the model runs
them (PDL on), and what each adds to the step.

    python3 benchmarks/step_timeline.py OUT.json --model qwen3-0.6b --table T.json --cells 1x256,8x256

Per cell, random bf16 weights, the table's decode graph (qwen3.generate.Generator, greedy) replayed
under torch.profiler (CUPTI records each kernel of a replayed graph). Kernels are named by their place
in a decoder layer: the offset from the layer's decode-attention kernel and the kernel's name (-2
fused_linear_kernel is the QKV GEMM where the q/k prep runs as its own kernel). Per place, over the
middle layers of every replay, the medians of:
- `dur`: the kernel's start to its end (with PDL it starts before the one ahead ends, and its time
  includes its wait);
- `adds`: its end minus the end of the kernel before it: what it adds to the step;
- `lead`: the end of the kernel before it minus its start: how early PDL let it start.
The sum of `adds` over a layer is the layer's share of the step.
Beside each cell, the attention's K/V floor (a layer's K and V bytes at the context over the copy
bandwidth this script measures, attn_bench.copy_bandwidth) and the attention kernel's `adds` against it:
how fast decode attention streams the cache where the model runs it (after the kernel ahead of it, not
after itself as in attn_bench's harness).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._probe import cells, table_args, table_model, write_result

REPLAYS = 10
ATTENTION = ("decode_attention_kernel", "decode_attention_prep_kernel")  # a layer's anchor


def _short(name: str) -> str:
    return name.split("(")[0].split("<")[0].replace("void ", "")[:48]


@torch.inference_mode()
def timeline(model, batch: int, context: int) -> list[list[tuple[str, float, float]]]:
    """Per replay, its kernels as (name, start us, end us), in start order."""
    from torch.profiler import ProfilerActivity, profile

    from qwen3.bench import _prefill, random_prompts, release_kv_cache
    from qwen3.generate import Generator

    gen = Generator(model, max_batch=batch, max_len=context + REPLAYS + 8, batch_sizes=[batch])
    try:
        prompts = random_prompts(batch, context, model.config.vocab_size, 0, gen.device)
        positions = torch.full((batch,), context, device=prompts.device)
        tokens = _prefill(gen, prompts).argmax(-1)
        tokens = gen.decode_greedy(tokens, positions)
        torch.cuda.synchronize()
        replays = []
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for step in range(1, REPLAYS + 1):
                tokens = gen.decode_greedy(tokens, positions + step)
                torch.cuda.synchronize()
        events = [e for e in prof.profiler.kineto_results.events()
                  if e.device_type() == torch.autograd.DeviceType.CUDA and "memcpy" not in e.name().lower()
                  and "memset" not in e.name().lower()]
    finally:
        del gen
        release_kv_cache(model)
        torch.cuda.empty_cache()
    events.sort(key=lambda e: e.start_ns())
    kernels = [(_short(e.name()), e.start_ns() / 1e3, (e.start_ns() + e.duration_ns()) / 1e3) for e in events]
    # Replays are separated by the host's synchronize: the largest gaps between kernels.
    gaps = sorted(range(1, len(kernels)), key=lambda i: kernels[i][1] - kernels[i - 1][2], reverse=True)
    cuts = sorted(gaps[:REPLAYS - 1])
    for lo, hi in zip([0, *cuts], [*cuts, len(kernels)], strict=True):
        replays.append(kernels[lo:hi])
    return replays


def places(replay: list[tuple[str, float, float]]) -> list[dict]:
    """Each kernel of the middle layers with its place, dur, adds and lead (us)."""
    attn = [i for i, (name, _, _) in enumerate(replay) if name in ATTENTION]
    rows = []
    for a, b in zip(attn[1:-2], attn[2:-1], strict=True):  # layers 1 .. L-3: attention a - 2 to b - 2
        for i in range(a - 2, b - 2):
            name, start, end = replay[i]
            prev_end = replay[i - 1][2]
            rows.append({"place": f"{i - a:+d} {name}", "dur": end - start, "adds": end - prev_end,
                         "lead": prev_end - start})
    return rows


def summarize(replays) -> dict:
    rows = [row for replay in replays for row in places(replay)]
    by_place: dict[str, list[dict]] = {}
    for row in rows:
        by_place.setdefault(row["place"], []).append(row)
    table = []
    for place, group in by_place.items():
        table.append({"place": place, "n": len(group),
                      **{key: round(statistics.median(r[key] for r in group), 2) for key in ("dur", "adds", "lead")}})
    table.sort(key=lambda r: int(r["place"].split()[0]))
    steps = [replay[-1][2] - replay[0][1] for replay in replays]
    return {"step_us": round(statistics.median(steps), 1), "kernels": statistics.median(len(r) for r in replays),
            "layer_adds_us": round(sum(r["adds"] for r in table), 2), "places": table}


def attention_floor(config, batch: int, context: int, bandwidth: float, table: list[dict]) -> dict:
    """A layer's K and V bytes at `context` over `bandwidth` (us), the attention kernel's `adds` (its
    place +0) and the floor's share of it."""
    kv_bytes = 2 * batch * context * config.num_key_value_heads * config.head_dim * 2  # K and V, bf16
    floor = kv_bytes / bandwidth * 1e6
    adds = next(r["adds"] for r in table if r["place"].startswith("+0 "))
    return {"kv_floor_us": round(floor, 2), "attention_adds_us": adds, "kv_share": round(floor / adds, 4)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    table_args(p, "qwen3-0.6b", "1x256")
    args = p.parse_args(argv)
    from benchmarks.attn_bench import copy_bandwidth

    model = table_model(args.model, args.table)
    bandwidth = copy_bandwidth()
    result = []
    for batch, context in cells(args.cells):
        summary = summarize(timeline(model, batch, context))
        summary.update(attention_floor(model.config, batch, context, bandwidth, summary["places"]))
        result.append({"batch": batch, "context": context, **summary})
        write_result(args.out, model=args.model, table=str(args.table), copy_bandwidth_Bps=bandwidth, cells=result)
        print(f"{args.model} batch {batch} x {context}: step {summary['step_us']} us on the GPU's clock, "
              f"{summary['kernels']} kernels, a middle layer adds {summary['layer_adds_us']} us", flush=True)
        print(f"  attention adds {summary['attention_adds_us']} us against its K/V floor {summary['kv_floor_us']} us "
              f"({summary['kv_share']:.0%}) at {bandwidth / 1e12:.2f} TB/s", flush=True)
        print(f"  {'place':<44}{'dur':>8}{'adds':>8}{'lead':>8}", flush=True)
        for row in summary["places"]:
            print(f"  {row['place']:<44}{row['dur']:8.2f}{row['adds']:8.2f}{row['lead']:8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
