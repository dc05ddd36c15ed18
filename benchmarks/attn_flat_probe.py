"""Is decode attention's gap to a plain streaming read (stream_floor_probe.py) in its program's
structure? A loop-free variant: one program per (sequence, KV head, BLOCK_N slots), K and V loaded at
once, partials combined by decode_attention's combine kernel.

    python3 benchmarks/attn_flat_probe.py OUT.json [--cells qwen3-0.6b:1:8192,...]

Variants (compile-time switches of one kernel):
- EARLY: the K/V loads are issued before the position is read, bounded by the cache's capacity L,
  not the sequence's length (what a program reads past the length is masked out of the softmax, but
  still read: only a cache filled to its capacity, as here, reads nothing extra). Off: the position
  first, then the loads of the live slots, as decode_attention does.
- combine: decode_attention's combine kernel (a program per head, sequence and DC head_dim values,
  DC 32 or 64), or none (the main kernel alone). The session-11 results (attn_flat.json) also have a
  "kernel" arm: the combine kernel before it became this one, a program per (KV head, sequence);
  their "wide" arms ran this design, then a copy here.
- MODE 1: loads and a sum only (no q, no softmax, no partials): the structure's own streaming rate.
Every output of MODE 0 is compared with decode_attention's plan; timed as attn_bench times.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._probe import cold_inputs, parse_cell, write_result
from benchmarks.attn_bench import copy_bandwidth, time_graph
from kernel_space import decode_attention as da
from kernel_space._gemm import pdl_enter


@triton.jit
def flat_kernel(q_ptr, kc_ptr, vc_ptr, pos_ptr, o_ptr, part_ptr, ml_ptr, sink_ptr, qk_scale, L, SPLITS,
                stride_kb, stride_kl, stride_kh, stride_vb, stride_vl, stride_vh,
                H: tl.constexpr, G: tl.constexpr, HP: tl.constexpr, HD: tl.constexpr, BLOCK_N: tl.constexpr,
                EARLY: tl.constexpr, MODE: tl.constexpr, PDL: tl.constexpr):
    unit = tl.program_id(0)
    seq = tl.program_id(1)
    split = tl.program_id(2)
    if PDL:
        pdl_enter()
    d = tl.arange(0, HD)
    n = split * BLOCK_N + tl.arange(0, BLOCK_N)
    row = seq.to(tl.int64)
    k_ptrs = kc_ptr + row * stride_kb + unit * stride_kh + n[:, None] * stride_kl + d[None, :]
    v_ptrs = vc_ptr + row * stride_vb + unit * stride_vh + n[:, None] * stride_vl + d[None, :]
    if EARLY:
        k = tl.load(k_ptrs, mask=(n < L)[:, None], other=0.0)
        v = tl.load(v_ptrs, mask=(n < L)[:, None], other=0.0)
        length = tl.minimum(tl.maximum(tl.load(pos_ptr + seq) + 1, 1), L)
    else:
        length = tl.minimum(tl.maximum(tl.load(pos_ptr + seq) + 1, 1), L)
        k = tl.load(k_ptrs, mask=(n < length)[:, None], other=0.0)
        v = tl.load(v_ptrs, mask=(n < length)[:, None], other=0.0)
    if MODE == 1:
        tl.store(sink_ptr + (seq * tl.num_programs(0) + unit) * SPLITS + split,
                 tl.sum(tl.sum(k.to(tl.float32) + v.to(tl.float32), axis=1), axis=0))
    elif split * BLOCK_N < length:
        r = tl.arange(0, HP)
        heads = unit * G + r
        live_h = r < G
        q = tl.load(q_ptr + row * (H * HD) + heads[:, None] * HD + d[None, :], mask=live_h[:, None], other=0.0)
        s = tl.dot(q, tl.trans(k))
        s = tl.where((n < length)[None, :], s * qk_scale, float("-inf"))
        m = tl.max(s, axis=1)
        p = tl.exp2(s - m[:, None])
        acc = tl.dot(p.to(v.dtype), v)
        if length <= BLOCK_N:  # one split: o itself (the combine kernel skips such a sequence)
            out = o_ptr + row * (H * HD) + heads[:, None] * HD + d[None, :]
            tl.store(out, (acc / tl.sum(p, axis=1)[:, None]).to(o_ptr.dtype.element_ty), mask=live_h[:, None])
        part = (row * H + heads) * SPLITS + split
        tl.store(part_ptr + part[:, None] * HD + d[None, :], acc, mask=live_h[:, None])
        tl.store(ml_ptr + part * 2, m, mask=live_h)
        tl.store(ml_ptr + part * 2 + 1, tl.sum(p, axis=1), mask=live_h)


def flat_attention(q, k_cache, v_cache, positions, scale, block_n, warps, early, mode, pdl, sink, combine="kernel",
                   dc=32):
    """combine: "kernel" (decode_attention's combine kernel, head_dim in slices of dc), or "none" (the
    main kernel alone: o is not written)."""
    b, _, h, hd = q.shape
    L, kv = k_cache.shape[1], k_cache.shape[2]
    g = h // kv
    splits = triton.cdiv(L, block_n)
    part = torch.empty((b, h, splits, hd), dtype=torch.float32, device=q.device)
    ml = torch.empty((b, h, splits, 2), dtype=torch.float32, device=q.device)
    o = torch.empty((b, 1, h * hd), dtype=q.dtype, device=q.device)
    extra = {"launch_pdl": True} if pdl else {}
    flat_kernel[(kv, b, splits)](q, k_cache, v_cache, positions.reshape(-1), o, part, ml, sink, scale * da.LOG2E, L,
                                 splits, *k_cache.stride()[:3], *v_cache.stride()[:3], H=h, G=g,
                                 HP=max(16, triton.next_power_of_2(g)), HD=hd, BLOCK_N=block_n, EARLY=early,
                                 MODE=mode, PDL=pdl, num_warps=warps, num_stages=1, **extra)
    if mode == 0 and combine == "kernel":
        da.decode_attention_combine_kernel[(h, b, hd // dc)](
            part, ml, o, positions.reshape(-1), splits, L, H=h, HD=hd, SP=triton.next_power_of_2(splits), DC=dc,
            BLOCK_N=block_n, num_warps=da.COMBINE_WARPS, PDL=pdl, **extra)
    return o


def plan_main_only(q, k_cache, v_cache, positions, scale, combine=False):
    """decode_attention's plan with combine=kernel: its main kernel only (o not combined), or with
    combine, also its combine kernel (decode_attention itself with that config)."""
    problem = da._check_inputs(q, k_cache, v_cache, positions, scale, 0)
    config = {**da._resolve(None, problem, q.device), "combine": "kernel"}
    grid, (o, part, ml, counts), pf_slots, meta = da._launch_args(config, problem, q)
    da._gemm._launcher(da.decode_attention_kernel, grid)(
        q, k_cache, v_cache, positions.reshape(-1), o, part, ml, counts, 0, scale * da.LOG2E, config["SPLITS"],
        problem.context, pf_slots, *k_cache.stride()[:3], *v_cache.stride()[:3], **meta)
    if combine:
        da._launch_combine(grid, (o, part, ml), positions.reshape(-1), problem, config, meta)
    return o


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--cells", default="qwen3-0.6b:1:8192,qwen3-8b:1:8192,qwen3-0.6b:1:32768,qwen3-0.6b:8:8192")
    args = p.parse_args(argv)
    bandwidth = copy_bandwidth()
    sink = torch.zeros(1 << 20, device="cuda")
    rows = []
    for cell in args.cells.split(","):
        problem = parse_cell(cell)
        floor = problem.kv_bytes() / bandwidth * 1e6
        inputs = cold_inputs(problem)
        want = da.decode_attention(**inputs[0]).float()
        us = time_graph(da.decode_attention, inputs)[0]
        rows.append({"cell": cell, "arm": "plan", "median_us": us, "of_floor": floor / us})
        print(f"{cell} plan {us:6.2f} us ({floor / us:4.0%})", flush=True)
        us = time_graph(plan_main_only, inputs)[0]
        rows.append({"cell": cell, "arm": "plan_main_only", "median_us": us, "of_floor": floor / us})
        print(f"{cell} plan, main kernel only {us:6.2f} us ({floor / us:4.0%})", flush=True)
        fn = partial(plan_main_only, combine=True)
        diff = (fn(**inputs[0]).float() - want).abs().max().item()
        us = time_graph(fn, inputs)[0]
        rows.append({"cell": cell, "arm": "plan_kernel_combine", "median_us": us, "of_floor": floor / us,
                     "max_abs_diff_vs_plan": diff})
        print(f"{cell} plan, combine kernel {us:6.2f} us ({floor / us:4.0%}) diff {diff:.2g}", flush=True)
        arms = [(64, 4, True, 1, "none", 32)]
        arms += [(bn, 4, early, 0, combine, dc) for bn in (64, 128) for early in (False, True)
                 for combine, dc in (("none", 32), ("kernel", 32), ("kernel", 64))]
        for block_n, warps, early, mode, combine, dc in arms:
            def fn(q, k_cache, v_cache, positions, scale, _a=(block_n, warps, early, mode), _c=(combine, dc)):
                return flat_attention(q, k_cache, v_cache, positions, scale, *_a, True, sink, *_c)
            try:
                diff = (fn(**inputs[0]).float() - want).abs().max().item() if combine != "none" else 0.0
                us = time_graph(fn, inputs)[0]
            except Exception as exc:  # one that fails to compile (registers): say so, go on
                print(f"{cell} BN{block_n} w{warps}: {type(exc).__name__}: {str(exc)[:90]}", flush=True)
                continue
            rows.append({"cell": cell, "arm": "flat", "BLOCK_N": block_n, "warps": warps, "early": early,
                         "mode": mode, "combine": combine, "dc": dc, "median_us": us, "of_floor": floor / us,
                         "max_abs_diff_vs_plan": diff})
            print(f"{cell} flat BN{block_n:<3d} w{warps} early={early:d} mode={mode} {combine}/{dc} {us:6.2f} us "
                  f"({floor / us:4.0%}) diff {diff:.2g}", flush=True)
        del inputs
        torch.cuda.empty_cache()
    write_result(args.out, bandwidth=bandwidth, rows=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
