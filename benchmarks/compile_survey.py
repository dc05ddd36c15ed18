"""Seconds Triton takes to compile a GEMM op's configs for a GPU target, on a machine without a GPU.

A tune's compile pool spends one core a config; the configs that take 10-17 s hold a study's end
(benchmarks/README.md, fifteenth session). This times them offline: each op's launcher runs on CPU
tensors with its launches recorded instead of run, and each recorded kernel is compiled for the target
(sm_90 by default) through triton.compile, as the pool would, without loading it. PDL and prefetch are
set as on an H100 (132 SMs, 50 MB L2); pointer alignment is assumed (as torch's allocations give).

    python3 benchmarks/compile_survey.py --model qwen3-0.6b --m 1,32,64 --configs 20 [--out file.json]
    python3 benchmarks/compile_survey.py --table benchmarks/results/dispatch_qwen3-0.6b_H100.json --out old.json

--table compiles a dispatch table's fused winners instead of a sample; each row keeps a hash of each kernel's
PTX, so that two trees can be shown to build the same code for the same configs.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

H100 = {"sm_count": 132, "l2": 50 << 20}
_TYPES = {"torch.bfloat16": "*bf16", "torch.float16": "*fp16", "torch.float32": "*fp32", "torch.int32": "*i32"}
_DEBUG_LABEL = re.compile(r"\$L__tmp\d+:")
_LAUNCH_ONLY = ("num_warps", "num_stages", "launch_pdl", "num_ctas")


def record_launches(op: str, m: int, n: int, k: int, cfg: dict, dtype: str = "bfloat16") -> list[tuple]:
    """The (kernel, positional args, keyword args) of every launch the op's fused launcher makes for cfg,
    recorded on CPU tensors with the PDL arguments the launcher gives on an H100."""
    import torch

    from kernel_space import _gemm, get_op

    calls: list[tuple] = []

    def launcher(kernel, grid):
        return lambda *a, **kw: calls.append((kernel, a, kw))

    spec = get_op(op)
    gen = torch.Generator().manual_seed(0)
    inputs = spec.compile_inputs(m, n, k, getattr(torch, dtype), "cpu", gen)
    # The launcher's own PDL rule (pdl_launch_args), answered as on an H100: compute capability 9.0,
    # 132 SMs, 50 MB of L2.
    with _patched(_gemm, _launcher=launcher, pdl_enabled=lambda device: True,
                  device_info=lambda device: (9, H100["sm_count"]), l2_bytes=lambda device: H100["l2"],
                  _counters=lambda device, tiles: torch.zeros(tiles, dtype=torch.int32)):
        spec.fused(inputs, cfg)
    return calls


@contextlib.contextmanager
def _patched(module, **names):
    old = {name: getattr(module, name) for name in names}
    try:
        for name, value in names.items():
            setattr(module, name, value)
        yield
    finally:
        for name, value in old.items():
            setattr(module, name, value)


def compile_launch(kernel, args: tuple, kwargs: dict, sm: int = 90):
    """Compile one recorded launch for cuda:sm; returns (seconds, compiled kernel)."""
    import torch
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    names = kernel.arg_names
    signature, constexprs, attrs = {}, {}, {}
    values = dict(zip(names, args, strict=False))  # positional first, the rest by keyword
    values.update({key: value for key, value in kwargs.items() if key not in _LAUNCH_ONLY})
    for i, name in enumerate(names):
        if name not in values:  # a constexpr left to its default
            param = kernel.params[i]
            values[name] = param.default
        value = values[name]
        if kernel.params[i].is_constexpr:
            signature[name], constexprs[(i,)] = "constexpr", value
        elif isinstance(value, torch.Tensor):
            signature[name] = _TYPES[str(value.dtype)]
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif isinstance(value, bool):
            signature[name] = "i1"
        elif isinstance(value, int):
            signature[name] = "i64" if abs(value) >= 2**31 else "i32"
            if value % 16 == 0:
                attrs[(i,)] = [["tt.divisibility", 16]]
        elif isinstance(value, float):
            signature[name] = "fp32"
        else:
            raise TypeError(f"{name}: cannot type {type(value).__name__}")
    src = ASTSource(kernel, signature, constexprs=constexprs, attrs=attrs)
    options = {key: kwargs[key] for key in ("num_warps", "num_stages") if key in kwargs}
    t0 = time.perf_counter()
    compiled = triton.compile(src, target=GPUTarget("cuda", sm, 32), options=options)
    return time.perf_counter() - t0, compiled


def code_of(ptx: str) -> str:
    """A kernel's PTX instructions: its debug sections, source-line markers and the debug labels of inlined
    calls ($L__tmpN, which only the debug sections name) left out. They move with every line of
    _gemm.py and every helper function, while the code stays the same."""
    code = ptx.split("\t.section\t.debug", 1)[0]
    return "\n".join(line for line in code.splitlines()
                     if not line.lstrip().startswith((".loc", ".file", "//")) and not _DEBUG_LABEL.fullmatch(line))


def code_hash(ptx: str) -> str:
    return hashlib.sha256(code_of(ptx).encode()).hexdigest()[:16]


def compile_config(op: str, m: int, n: int, k: int, cfg: dict, sm: int = 90, ptx_dir: str = "") -> dict:
    """Compile every kernel of one config: the seconds summed, and a hash of each kernel's PTX."""
    total, hashes, kernels = 0.0, [], []
    for kernel, args, kwargs in record_launches(op, m, n, k, cfg):
        seconds, compiled = compile_launch(kernel, args, kwargs, sm)
        total += seconds
        kernels.append(kernel.__name__ if hasattr(kernel, "__name__") else kernel.fn.__name__)
        hashes.append(code_hash(compiled.asm["ptx"]))
        if ptx_dir:
            Path(ptx_dir, f"{hashes[-1]}.ptx").write_text(code_of(compiled.asm["ptx"]))
    return {"op": op, "m": m, "config": cfg, "seconds": round(total, 2), "kernels": kernels, "ptx": hashes}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="qwen3-0.6b")
    p.add_argument("--ops", default="rmsnorm_qkv,o_proj_residual,rmsnorm_gate_up_silu,down_residual")
    p.add_argument("--m", default="1,32,64,256", help="comma list of batch rows")
    p.add_argument("--configs", type=int, default=20, help="configs sampled per (op, m)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--table", default="", help="compile this dispatch table's fused winners instead")
    p.add_argument("--out", default="")
    p.add_argument("--ptx", default="", help="write each kernel's PTX (code only) here, named by its hash")
    args = p.parse_args()
    if args.ptx:
        Path(args.ptx).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TRITON_CACHE_DIR", tempfile.mkdtemp(prefix="ks-survey-"))  # cold: every compile counted
    from kernel_space import op_shapes
    from qwen3.config import resolve_model
    from tuner.candidates import sample_configs

    jobs = []
    if args.table:
        table = json.loads(Path(args.table).read_text())
        for op, entry in table["ops"].items():
            for bucket in entry["buckets"]:
                if bucket["arm"] == "fused" and "path" in bucket["config"]:
                    cfg = {key: v for key, v in bucket["config"].items() if key != "impl"}
                    jobs.append((op, bucket["m"], entry["N"], entry["K"], cfg))
    else:
        shapes = op_shapes(resolve_model(args.model).dims())
        for op in args.ops.split(","):
            n, k = shapes[op]
            for m in (int(x) for x in args.m.split(",")):
                for cfg in sample_configs(op, m, n, k, 2, args.configs, seed=args.seed):
                    jobs.append((op, m, n, k, cfg))
    rows = []
    for op, m, n, k, cfg in jobs:
        row = compile_config(op, m, n, k, cfg, ptx_dir=args.ptx)
        rows.append(row)
        print(f"{op:22s} M={m:<4d} {row['seconds']:6.2f} s  {_short(cfg)}", flush=True)
    seconds = sorted(r["seconds"] for r in rows)
    if seconds:
        print(f"{len(rows)} configs: {sum(seconds):.1f} s in all, median {seconds[len(seconds) // 2]:.2f} s, "
              f"max {seconds[-1]:.2f} s")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows}, indent=1))
    return 0


def _short(cfg: dict) -> str:
    keys = ("path", "BLOCK_M", "BLOCK_N", "BLOCK_K", "SPLIT_K", "split_reduce", "num_warps", "num_stages", "prologue")
    return " ".join(f"{key}={cfg[key]}" for key in keys if key in cfg)


if __name__ == "__main__":
    raise SystemExit(main())
