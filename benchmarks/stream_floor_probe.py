"""How close can one launch that reads N bytes come to the copy bandwidth, timed as attn_bench times
decode attention? A pure streaming read kernel beside decode attention's plan, at the KV bytes of
Qwen3 batch 1 at 2k-32k context.

    python3 benchmarks/stream_floor_probe.py OUT.json [--contexts 2048,4096,8192,16384,32768]

Decode attention at batch 1 x 8k reads 33.5 MB a launch: at the 1 GiB copy's bandwidth, 11.3 us. The
kernel takes ~17 us alone, and ~5.5 us at 256 slots, where it reads 1 MB: most of the gap looks like
a fixed cost of any launch (its start, its first load's latency, its tail), which a 1 GiB copy
amortizes and a 33.5 MB launch cannot. This measures that cost for the best a launch can do:
- `read`: a Triton kernel that only streams K and V (each program sums a contiguous range; as many
  programs as the grid, 8 KB-16 KB per load), best over a few grids and tile sizes, with and without
  PDL's wait/launch-dependents entry (the attention kernel's);
- `copy`: torch's device-to-device copy of the same bytes (it also writes them: its share is
  2 x bytes over the copy bandwidth);
- `empty`: a launch of one program that does nothing but PDL's entry;
- `plan`: decode attention with attention_plan's config (0.6B heads), same cache bytes.
Every arm runs in one CUDA graph of >= 32 launches rotating over copies totalling >= 4x L2 (cold L2),
median of 15 replays (attn_bench.time_graph).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from functools import partial
from pathlib import Path

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._probe import attention_cell, cold_inputs, write_result
from benchmarks.attn_bench import copy_bandwidth, time_graph
from kernel_space._gemm import pdl_enter
from kernel_space.decode_attention import attention_plan, decode_attention


@triton.jit
def _read_kernel(k_ptr, v_ptr, out_ptr, n, per_program, BLOCK: tl.constexpr, PDL: tl.constexpr):
    if PDL:
        pdl_enter()
    pid = tl.program_id(0)
    start = pid.to(tl.int64) * per_program
    acc = tl.zeros([BLOCK], tl.float32)
    for i in range(0, per_program, BLOCK):
        offs = start + i + tl.arange(0, BLOCK)
        live = offs < n
        acc += (tl.load(k_ptr + offs, mask=live, other=0.0).to(tl.float32)
                + tl.load(v_ptr + offs, mask=live, other=0.0).to(tl.float32))
    tl.store(out_ptr + pid, tl.sum(acc, axis=0))


@triton.jit
def _empty_kernel(out_ptr, PDL: tl.constexpr):
    if PDL:
        pdl_enter()
    tl.store(out_ptr, 0.0)


def read_fn(programs: int, block: int, warps: int, pdl: bool):
    extra = {"launch_pdl": True} if pdl else {}

    def run(k, v, out):
        per = triton.cdiv(triton.cdiv(k.numel(), programs), block) * block
        _read_kernel[(programs,)](k, v, out, k.numel(), per, BLOCK=block, PDL=pdl, num_warps=warps, **extra)
    return run


def empty_fn(pdl: bool):
    extra = {"launch_pdl": True} if pdl else {}

    def run(out):
        _empty_kernel[(1,)](out, PDL=pdl, **extra)
    return run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--contexts", default="2048,4096,8192,16384,32768")
    args = p.parse_args(argv)
    bandwidth = copy_bandwidth()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    rows = []

    def record(context, arm, detail, us, moved):
        floor = moved / bandwidth * 1e6
        rows.append({"context": context, "arm": arm, "detail": detail, "median_us": us, "floor_us": floor,
                     "of_floor": floor / us})
        print(f"ctx {context:6d} {arm:6s} {str(detail):44s} {us:7.2f} us ({floor / us:4.0%})", flush=True)

    out = torch.zeros(4096, device="cuda")
    for pdl in (False, True):
        us = time_graph(empty_fn(pdl), [{"out": out}])[0]
        record(0, "empty", {"pdl": pdl}, us, 0)
    for context in (int(x) for x in args.contexts.split(",")):
        problem = attention_cell("qwen3-0.6b", 1, context)
        kv_bytes = problem.kv_bytes()
        inputs = cold_inputs(problem)
        plan = attention_plan(1, problem.heads, problem.kv_heads, problem.head_dim, context, sms)
        us = time_graph(partial(decode_attention, config=plan), inputs)[0]
        record(context, "plan", {k: plan[k] for k in ("SPLITS", "BLOCK_N", "num_warps", "num_stages")}, us, kv_bytes)
        flat = [{"k": i["k_cache"].reshape(-1), "v": i["v_cache"].reshape(-1), "out": out} for i in inputs]
        best = {}
        for programs, block, warps, pdl in itertools.product((sms, 2 * sms, 4 * sms, 8 * sms), (4096, 8192),
                                                              (4, 8), (False, True)):
            fn = read_fn(programs, block, warps, pdl)
            us = time_graph(fn, flat)[0]
            if pdl not in best or us < best[pdl][0]:
                best[pdl] = (us, {"programs": programs, "BLOCK": block, "warps": warps, "pdl": pdl})
        for _pdl, (us, detail) in sorted(best.items()):
            record(context, "read", detail, us, kv_bytes)
        pairs = [{"src": i["k_cache"], "dst": torch.empty_like(i["k_cache"])} for i in inputs]
        us = time_graph(lambda src, dst: dst.copy_(src), pairs)[0]
        record(context, "copy", {"bytes": 2 * pairs[0]["src"].numel() * 2}, us, 2 * pairs[0]["src"].numel() * 2)
        del inputs, flat, pairs
        torch.cuda.empty_cache()
    write_result(args.out, bandwidth=bandwidth, sms=sms, rows=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
