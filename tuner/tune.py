"""Tune a model's ops on this machine: every (op, M bucket) study in turn, resumable, with progress."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import optuna
import torch

from kernel_space.fingerprint import current_fingerprint
from qwen3.config import Qwen3Config
from storage import Store
from tuner.compile import shutdown as compile_pool_shutdown
from tuner.distributed import Callbacks, plan, study_keys, work
from tuner.search import StudyOutcome, TuneOptions

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class TuneReport:
    model: str
    fingerprint: dict
    outcomes: list[StudyOutcome]
    skipped: list[tuple[str, int]]  # (op, m) not reached before the time budget ran out (attention_shape.describe)
    wall_s: float


def tune_model(store: Store, config: Qwen3Config, ops: list[str], buckets: list[int], dtype: str,
               opts: TuneOptions, seconds: float | None = None,
               on_study: Callable[[str, int, int], None] | None = None,
               on_trial: Callable[[str, int, int, int, float | None], None] | None = None,
               on_done: Callable[[StudyOutcome], None] | None = None,
               contexts: tuple[int, ...] | None = None) -> TuneReport:
    """Tune every (op, bucket) in this process (decode attention at every sane (batch, context) bucket,
    contexts from `contexts`: see tuner.distributed.study_keys): queue the studies, then work the queue
    as one worker (other workers on the same database may share it). A bucket's winner warm-starts the next."""
    t0 = time.monotonic()
    if seconds is not None:
        opts.deadline = t0 + seconds
    device_limits(opts)
    fp = current_fingerprint()
    keys = study_keys(config, ops, buckets, dtype, contexts, fp["total_memory"])
    ids = plan(store, [fp], config, ops, buckets, dtype, opts.trials, contexts)
    callbacks = Callbacks(on_study=(lambda op, m, total, shared: on_study(op, m, total)) if on_study else None,
                          on_trial=on_trial, on_done=on_done)
    with contextlib.ExitStack() as stack:
        stack.callback(compile_pool_shutdown)
        report = work(store, fp, opts, callbacks, only=ids)
    reached = {(o.op, o.m) for o in report.outcomes}
    skipped = [(op, m) for op, m in keys if (op, m) not in reached]
    return TuneReport(config.name, fp, report.outcomes, skipped, time.monotonic() - t0)


INTERPRETER_ON_GPU = ("TRITON_INTERPRET=1 runs Triton's interpreter, which cannot be timed on a CUDA GPU (its "
                      "kernels run on the host, outside CUDA graphs): unset it to tune on the GPU, or hide the "
                      "GPU (CUDA_VISIBLE_DEVICES=) to tune through the interpreter on the CPU")


def device_limits(opts: TuneOptions) -> None:
    """SM count and shared memory of this process's GPU into the options (defaults: an H100's).
    ValueError where Triton's interpreter is on beside a CUDA GPU: every arm with a Triton kernel would
    fail to time there (the tune would end without winners); said once, before any study starts."""
    if torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") == "1":
        raise ValueError(INTERPRETER_ON_GPU)
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        opts.sm_count, opts.smem_limit = props.multi_processor_count, props.shared_memory_per_block_optin


