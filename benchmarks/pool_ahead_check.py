"""Does a config the compile pool built ahead of time (nineteenth session: meta tensors, Triton's driver
pointed at this GPU, no CUDA context) load from Triton's cache when the process that times it launches
it, or does that process compile it again?

    python3 benchmarks/pool_ahead_check.py OUT.json [--model qwen3-0.6b] [--configs 6]

A fresh Triton cache. Eight subprocesses compile the jobs as pool processes do
(tuner.compile._compile_one with the worker's current_target()) and says whether it held a CUDA
context at the end (each one's primary-context state, cuDevicePrimaryCtxGetState). Then this
process launches each job on the GPU (its inputs made as a trial makes them) and counts the binaries
its launch added to the cache: 0 means the GPU process found what the pool built. Jobs: each GEMM site
of the model at M = 1, 8, 32, 128 (the defaults and configs drawn from the space) and decode attention
at batch x context 1 x 8k, 8 x 2k, 32 x 256.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def primary_context_active() -> bool | None:
    """Whether this process holds device 0's primary CUDA context (None where libcuda cannot say)."""
    import ctypes

    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    dev, flags, active = ctypes.c_int(), ctypes.c_uint(), ctypes.c_int()
    if cuda.cuInit(0) or cuda.cuDeviceGet(ctypes.byref(dev), 0):
        return None
    if cuda.cuDevicePrimaryCtxGetState(dev, ctypes.byref(flags), ctypes.byref(active)):
        return None
    return bool(active.value)


def jobs(model: str, count: int) -> list:
    from kernel_space.attention_shape import encode_heads, encode_m
    from kernel_space.decode_attention import problem_of, sample_configs
    from kernel_space.registry import op_shapes
    from kernel_space.spec import Problem
    from qwen3.config import resolve_model
    from tuner.candidates import sample_configs as gemm_configs

    dims = resolve_model(model).dims()
    out = []
    for op, (n, k) in op_shapes(dims).items():
        for m in (1, 8, 32, 128):
            for cfg in gemm_configs(op, m, n, k, 2, count, seed=m):
                out.append((Problem(op, m, n, k, "bfloat16"), cfg))
    n, k = encode_heads(dims.heads, dims.kv_heads, dims.head_dim)
    for batch, context in ((1, 8192), (8, 2048), (32, 256)):
        m = encode_m(batch, context)
        for cfg in sample_configs(problem_of(m, n, k, 2), count):
            out.append((Problem("decode_attention", m, n, k, "bfloat16"), cfg))
    return out


def compile_side(path: str, part: int, parts: int) -> None:
    """The pool's side, in its own process: compile every parts-th job from the part-th, ahead of time."""
    from tuner import compile as pool

    todo = pickle.loads(Path(path).read_bytes())[part::parts]
    target = pool.current_target()
    results = []
    for problem, cfg in todo:
        seconds, error = pool._compile_one(problem, cfg, target)
        results.append({"seconds": round(seconds, 3), "error": error})
    print(json.dumps({"target": list(target) if target else None, "results": results,
                      "context": primary_context_active()}))


def cubins(cache: Path) -> set:
    return {p.parent.name + "/" + p.name for p in cache.rglob("*.cubin")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--model", default="qwen3-0.6b")
    p.add_argument("--configs", type=int, default=6, help="configs a (site, M) and attention cell")
    p.add_argument("--processes", type=int, default=8, help="compile processes, as a pool's")
    p.add_argument("--compile-side", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.compile_side:
        compile_side(args.compile_side[0], int(args.compile_side[1]), int(args.compile_side[2]))
        return 0
    cache = Path(tempfile.mkdtemp(prefix="ks-ahead-"))
    os.environ["TRITON_CACHE_DIR"] = str(cache)
    os.environ.pop("KERNEL_SEARCH_POOL_CONTEXT", None)
    todo = jobs(args.model, args.configs)
    job_file = cache.parent / f"{cache.name}.jobs"
    job_file.write_bytes(pickle.dumps(todo))
    t0 = time.perf_counter()
    parts = args.processes
    sides = [subprocess.Popen([sys.executable, __file__, args.out, "--compile-side", str(job_file), str(i), str(parts)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
             for i in range(parts)]
    outputs = [side.communicate() for side in sides]
    compile_wall = time.perf_counter() - t0
    if any(side.returncode for side in sides):
        print(*(err[-2000:] for _, err in outputs), sep="\n")
        return 1
    answers = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    results: list = [None] * len(todo)
    for i, answer in enumerate(answers):
        results[i::parts] = answer["results"]
    pool_side = {"target": answers[0]["target"], "results": results,
                 "context": [answer["context"] for answer in answers]}

    import torch

    from kernel_space import get_op

    rows, before_all = [], cubins(cache)
    for (problem, cfg), built in zip(todo, pool_side["results"], strict=True):
        row = {"op": problem.op, "m": problem.m, "config": cfg, "pool_s": built["seconds"],
               "pool_error": built["error"]}
        if built["error"] is None:
            spec = get_op(problem.op)
            gen = torch.Generator(device="cuda").manual_seed(0)
            inputs = spec.make_inputs(problem.m, problem.n, problem.k, torch.bfloat16, "cuda", gen)
            before = cubins(cache)
            t = time.perf_counter()
            try:
                spec.fused(inputs, cfg)
                torch.cuda.synchronize()
                row["gpu_error"] = None
            except Exception as exc:  # the same failure the pool would have reported, or a new one
                row["gpu_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            row["first_launch_s"] = round(time.perf_counter() - t, 4)
            # The q/k prep kernel of prep=separate is never the pool's (compile_only skips it: the same in
            # every config of a study, it compiles once, in the GPU process's first trial).
            row["new_binaries"] = sorted(b for b in cubins(cache) - before if "_qk_norm_rope_cache" not in b)
            del inputs
        rows.append(row)
    launched = [r for r in rows if r["pool_error"] is None]
    recompiled = [r for r in launched if r["new_binaries"]]
    summary = {"gpu": torch.cuda.get_device_name(0), "model": args.model, "target": pool_side["target"],
               "pool_processes_holding_a_context": pool_side["context"], "jobs": len(rows),
               "pool_errors": len(rows) - len(launched),
               "launched": len(launched), "recompiled_on_gpu": len(recompiled),
               "gpu_errors": sum(1 for r in launched if r["gpu_error"]), "compile_wall_s": round(compile_wall, 1),
               "binaries_from_pool": len(before_all),
               "first_launch_s_median": sorted(r["first_launch_s"] for r in launched)[len(launched) // 2]
               if launched else None}
    Path(args.out).write_text(json.dumps({**summary, "rows": rows}, indent=1))
    print(json.dumps(summary))
    for r in recompiled[:10]:
        print("recompiled:", r["op"], r["m"], r["config"], r["new_binaries"])
    for r in [r for r in launched if r["gpu_error"]][:10]:
        print("gpu error:", r["op"], r["m"], r["gpu_error"])
    return 3 if recompiled else 0  # exit 3: the pool's binaries were not the GPU process's


if __name__ == "__main__":
    raise SystemExit(main())
