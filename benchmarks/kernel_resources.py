"""Registers, spills and shared memory of the GEMM kernels a dispatch table runs at one M, and how
many of their programs an SM can hold: whether a kernel launched early by PDL finds room on an SM
beside the one before it.

    python3 benchmarks/kernel_resources.py --table dispatch.json [--m 1] [--json OUT.json]

Per GEMM op of the table, the bucket serving M: its config is launched once on random inputs (on the
GPU: the compiled binary is what ptxas made of it), then every Triton kernel the launch compiled is
read back from Triton's cache. programs/SM is the least of what the registers (65,536 a SM, allocated
per warp in units of 256), the shared memory (228 KB a SM), the threads (2,048) and the 32-block
limit allow; grid is the launch's programs. Needs a CUDA GPU."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernel_space import _gemm, get_op
from kernel_space.geometry import LinearLaunch
from storage.table import load_table

SM_REGISTERS, SM_SHARED, SM_THREADS, SM_BLOCKS = 65536, 233472, 2048, 32


def per_sm(regs: int, warps: int, shared: int) -> int:
    per_warp = -(-max(regs, 1) * 32 // 256) * 256
    by_regs = SM_REGISTERS // (per_warp * warps)
    by_shared = SM_SHARED // shared if shared else SM_BLOCKS
    return min(by_regs, by_shared, SM_THREADS // (32 * warps), SM_BLOCKS)


def compiled_kernels() -> dict:
    """Every compiled kernel of the GEMM's three Triton functions: key -> (name, CompiledKernel)."""
    out = {}
    for fn in (_gemm.fused_linear_kernel, _gemm.splitk_epilogue_kernel, _gemm.rmsnorm_prepass_kernel):
        for caches in fn.device_caches.values():
            for key, kernel in caches[0].items():
                out[(fn.__name__, key)] = (fn.__name__, kernel)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--m", type=int, default=1)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    table = load_table(args.table)
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows = []
    for op, entry in table.ops.items():
        if op == "decode_attention":
            continue
        bucket = next((b for b in entry.buckets if b.m >= args.m), None)
        if bucket is None or bucket.arm != "fused":
            print(f"{op:22s} M={args.m}: {'past the last bucket' if bucket is None else bucket.arm}")
            continue
        spec = get_op(op)
        before = set(compiled_kernels())
        inputs = spec.make_inputs(args.m, entry.n, entry.k, torch.bfloat16, "cuda", gen)
        spec.fused(inputs, bucket.config)
        torch.cuda.synchronize()
        launch = LinearLaunch.of(bucket.config, args.m, entry.n // 2 if spec.gated else entry.n, entry.k, spec.gated)
        for key, (name, kernel) in compiled_kernels().items():
            if key in before:
                continue
            md = kernel.metadata
            regs, spills, shared, warps = kernel.n_regs, kernel.n_spills, md.shared, md.num_warps
            row = {"op": op, "m": args.m, "kernel": name, "config": bucket.config, "regs": regs, "spills": spills,
                   "shared": shared, "warps": warps, "programs_per_sm": per_sm(regs, warps, shared),
                   "grid": launch.tiles * launch.split if name == "fused_linear_kernel" else None}
            rows.append(row)
            print(f"{op:22s} {name:24s} regs {regs:3d} spills {spills:3d} smem {shared:6d} warps {warps} "
                  f"-> {row['programs_per_sm']:2d} a SM, grid {row['grid']}")
    if args.json:
        args.json.write_text(json.dumps({"gpu": torch.cuda.get_device_name(0), "table": str(args.table), "rows": rows},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
