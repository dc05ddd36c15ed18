"""Where a decode step's time goes, kernel by kernel, with a dispatch table.

    python3 benchmarks/step_profile.py OUT.json --model qwen3-8b --table T.json --cells 32x256,1x256

Per cell (batch x context), random bf16 weights: the CUDA-graph step time (qwen3.bench.bench_cell,
the table arm) with PDL and without (KERNEL_SEARCH_PDL=0), then eager steps under torch.profiler
with PDL off (with PDL a kernel's recorded time includes its wait for the one before), summed per
kernel name, with calls per step and the sum over all kernels. The sum beside the graph step times
says how much of the step is kernels running one at a time and how much is not (launch gaps, and
PDL's overlap, which makes the graph step shorter).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._probe import cells, table_args, table_model, write_result
from qwen3.bench import bench_cell, release_kv_cache


@torch.inference_mode()
def step_kernels(model, batch: int, context: int, steps: int = 3) -> list[dict]:
    """GPU microseconds a step per kernel name (mean of `steps` eager steps), largest first."""
    from torch.profiler import ProfilerActivity, profile

    model.allocate_kv_cache(batch, context + 8)
    tokens = torch.zeros((batch, 1), dtype=torch.long, device="cuda")
    positions = torch.full((batch, 1), context, dtype=torch.long, device="cuda")

    def step():
        return model.compute_logits(model(tokens, positions))

    step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    release_kv_cache(model)
    sums: dict[str, list] = {}
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            entry = sums.setdefault(event.name, [0.0, 0])
            entry[0] += getattr(event, "device_time_total", 0.0) or event.cuda_time_total
            entry[1] += 1
    rows = [{"kernel": name[:90], "us": round(us / steps, 1), "calls": n // steps} for name, (us, n) in sums.items()]
    rows.sort(key=lambda r: -r["us"])
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    table_args(p, "qwen3-0.6b", "1x256")
    p.add_argument("--top", type=int, default=16)
    args = p.parse_args(argv)
    model = table_model(args.model, args.table)
    result = []
    for batch, context in cells(args.cells):
        row = bench_cell(model, "table", batch, context, 32, 3)
        os.environ["KERNEL_SEARCH_PDL"] = "0"
        try:
            off = bench_cell(model, "table", batch, context, 32, 3)
            kernels = step_kernels(model, batch, context)
        finally:
            del os.environ["KERNEL_SEARCH_PDL"]
        total = sum(k["us"] for k in kernels)
        cell = {"batch": batch, "context": context, "graph_step_ms": row.decode_ms,
                "graph_step_ms_pdl_off": off.decode_ms, "kernels_sum_us": total, "kernels": kernels}
        result.append(cell)
        write_result(args.out, model=args.model, table=str(args.table), cells=result)
        print(f"{args.model} batch {batch} x {context}: graph step {row.decode_ms * 1000:.0f} us "
              f"({off.decode_ms * 1000:.0f} PDL off), "
              f"kernels {total:.0f} us in {sum(k['calls'] for k in kernels)} launches", flush=True)
        for k in kernels[:args.top]:
            print(f"  {k['us']:8.1f} us {k['calls']:4d}x  {k['kernel'][:80]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
