"""One measurement: an arm of an op at a shape, checked for correctness, then timed.

Never raises for a bad config: compile errors, out-of-resources and wrong results come back as a
failed or incorrect TrialResult with the reason, which is what gets stored.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from kernel_space import get_op
from kernel_space.spec import DEFAULT_SMEM_LIMIT, Problem
from tuner import measure, trace


@dataclass
class TrialResult:
    arm: str
    config: dict
    status: str  # ok | failed | incorrect
    reason: str | None = None
    rel_error: float | None = None
    compile_s: float | None = None
    median_us: float | None = None
    p20_us: float | None = None
    p80_us: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def short_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = next((line for line in text if line.strip()), "")
    return f"{type(exc).__name__}: {first[:300]}"


def run_trial(problem: Problem, arm: str, cfg: dict | None, device, rotation: list[dict] | None, seed: int,
              smem_limit: int = DEFAULT_SMEM_LIMIT, time_it: bool = True) -> TrialResult:
    """Check then time one arm. `rotation` is the cold-L2 input rotation (shared by all trials of
    a study, so weights are not re-generated per trial); correctness always uses fresh inputs."""
    spec = get_op(problem.op)
    m, n, k, dtype = problem.m, problem.n, problem.k, getattr(torch, problem.dtype)
    cfg = dict(cfg or {"impl": arm})
    if arm == "fused":
        why = spec.check(cfg, m, n, k, dtype.itemsize, smem_limit)
        if why is not None:
            return TrialResult(arm, cfg, "failed", reason=f"invalid config: {why}")
    result = TrialResult(arm, cfg, "ok")
    try:
        t0 = time.perf_counter()
        result.rel_error = measure.check_correct(spec, arm, cfg, m, n, k, dtype, device, seed)
        if str(device).startswith("cuda"):
            torch.cuda.synchronize(device)
        # The first run compiles (or loads from Triton's cache): it bounds the compile cost.
        result.compile_s = time.perf_counter() - t0
        trace.event("child checked", s=round(result.compile_s, 4))
    except measure.IncorrectResult as exc:
        result.status, result.reason, result.rel_error = "incorrect", str(exc), exc.error
        return result
    except Exception as exc:
        result.status, result.reason = "failed", short_reason(exc)
        _raise_if_context_lost(exc)
        return result
    if time_it and rotation is not None:
        try:
            t = measure.time_arm(measure.arm_fn(spec, arm, cfg), rotation)
        except Exception as exc:
            result.status, result.reason = "failed", "timing: " + short_reason(exc)
            _raise_if_context_lost(exc)
            return result
        result.median_us, result.p20_us, result.p80_us = t.median_us, t.p20_us, t.p80_us
        trace.event("child timed")
    return result


class ContextLost(RuntimeError):
    """The CUDA context is unusable (illegal address, launch failure): the process must restart."""


def _raise_if_context_lost(exc: BaseException) -> None:
    text = str(exc).lower()
    if any(s in text for s in ("illegal memory access", "illegal address", "unspecified launch failure",
                               "misaligned address", "device-side assert")):
        raise ContextLost(short_reason(exc)) from exc
