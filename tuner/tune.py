"""Tune a model's ops on this machine: every (op, M bucket) study in turn, resumable, with progress."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import optuna
import torch

import kernel_space as ks
from kernel_space.fingerprint import current_fingerprint
from kernel_space.spec import Problem
from qwen3.config import Qwen3Config
from storage import Store
from tuner.compile import shutdown as compile_pool_shutdown
from tuner.search import StudyOutcome, TuneOptions, tune_study
from tuner.worker import Worker

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class TuneReport:
    model: str
    fingerprint: dict
    outcomes: list[StudyOutcome]
    skipped: list[tuple[str, int]]  # (op, m) not reached before the time budget ran out
    wall_s: float


def tune_model(store: Store, config: Qwen3Config, ops: list[str], buckets: list[int], dtype: str,
               opts: TuneOptions, seconds: float | None = None,
               on_study: Callable[[str, int, int], None] | None = None,
               on_trial: Callable[[str, int, int, int, float | None], None] | None = None,
               on_done: Callable[[StudyOutcome], None] | None = None) -> TuneReport:
    """Tune every (op, bucket); a bucket's winner warm-starts the next bucket's study of that op."""
    t0 = time.monotonic()
    if seconds is not None:
        opts.deadline = t0 + seconds
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        opts.sm_count, opts.smem_limit = props.multi_processor_count, props.shared_memory_per_block_optin
    fp = current_fingerprint()
    dims = config.dims()
    outcomes, skipped = [], []
    with Worker() as worker, contextlib.ExitStack() as stack:
        stack.callback(compile_pool_shutdown)
        for op in ops:
            n, k = ks.get_op(op).shape(dims)
            warm = None
            for m in sorted(buckets):
                if opts.deadline is not None and time.monotonic() >= opts.deadline:
                    skipped.append((op, m))
                    continue
                if on_study:
                    on_study(op, m, opts.trials)
                outcome = tune_study(
                    store, worker, fp, config.name, Problem(op, m, n, k, dtype), opts, warm_start=warm,
                    on_trial=(lambda done, total, best, op=op, m=m: on_trial(op, m, done, total, best))
                    if on_trial else None,
                )
                outcomes.append(outcome)
                warm = outcome.winner_config
                if on_done:
                    on_done(outcome)
    return TuneReport(config.name, fp, outcomes, skipped, time.monotonic() - t0)


def interpreter_needed() -> bool:
    """Without a GPU the kernels run in Triton's interpreter (set before triton compiles anything)."""
    if torch.cuda.is_available():
        return False
    os.environ.setdefault("TRITON_INTERPRET", "1")
    return True
