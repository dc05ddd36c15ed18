"""Compile many configs in parallel: a process pool fills Triton's on-disk cache, so the process that
times them only loads binaries. Triton's compile runs mostly in LLVM and ptxas, one core each."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import time

from tuner.worker import sigint_ignored

_INPUTS: dict = {}


def _compile_one(problem, cfg: dict) -> tuple[float, str | None]:
    import torch

    from kernel_space import _gemm, get_op
    from tuner.trial import short_reason

    spec = get_op(problem.op)
    if problem not in _INPUTS:
        _INPUTS.clear()
        gen = torch.Generator(device="cuda").manual_seed(0)
        _INPUTS[problem] = spec.compile_inputs(problem.m, problem.n, problem.k, getattr(torch, problem.dtype),
                                               "cuda", gen)
    t0 = time.perf_counter()
    try:
        with _gemm.compile_only():
            spec.fused(_INPUTS[problem], cfg)
    except Exception as exc:
        return time.perf_counter() - t0, short_reason(exc)
    return time.perf_counter() - t0, None


def precompile(jobs: list[tuple], workers: int | None = None) -> list[tuple[float, str | None]]:
    """jobs: (kernel_space.Problem, cfg) pairs. Returns (seconds, error or None) per job, in order.
    Without CUDA there is nothing to precompile (the interpreter compiles nothing): all zeros."""
    import torch

    if not jobs or not torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1":
        return [(0.0, None)] * len(jobs)
    pool = _pool(workers or max(1, min(16, (os.cpu_count() or 2) - 1)))
    with sigint_ignored():  # the pool starts its processes on submit: Ctrl-C is the parent's alone
        futures = [pool.submit(_compile_one, *job) for job in jobs]
    out = []
    for fut in futures:
        try:
            out.append(fut.result())
        except cf.process.BrokenProcessPool as exc:
            shutdown()  # a worker died (a crash in the compiler): the next batch gets a fresh pool
            out.append((0.0, f"compile worker died: {exc}"))
        except Exception as exc:
            out.append((0.0, f"compile failed: {type(exc).__name__}: {exc}"))
    return out


# One pool for the whole run: starting 15 processes that import torch costs seconds per batch.
_POOL: dict = {}


def _pool(workers: int) -> cf.ProcessPoolExecutor:
    pool = _POOL.get(workers)
    if pool is None:
        shutdown()
        pool = _POOL[workers] = cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
    return pool


def shutdown() -> None:
    """Stop the compile pool (the tuner calls this when it is done)."""
    for pool in _POOL.values():
        pool.shutdown(wait=False, cancel_futures=True)
    _POOL.clear()
