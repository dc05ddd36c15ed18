"""Tuning as a queue of studies that any number of workers drain: one process per GPU on a host
(`tune --gpus`), and workers on other hosts (`kernel-search worker`) against one PostgreSQL database.

plan() turns a model's (op, M bucket) studies into queue rows for each GPU fingerprint (decode
attention's: one per sane (batch, context) bucket, see study_keys). work() is one
worker: it claims the next free study of its fingerprint (storage.queue), runs it with the lease
renewed as a heartbeat, marks it done, and when nothing is free helps measure a study another worker
holds, until the queue of its fingerprint is empty. A worker that dies stops renewing its lease;
once the lease runs out another worker takes the study over, and every trial the dead one stored is
kept (the study resumes from the database).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import kernel_space as ks
from kernel_space.attention_shape import attention_buckets, context_buckets, encode_m
from kernel_space.spec import DEFAULT_DEVICE_MEMORY, DTYPE_BYTES, Problem
from qwen3.config import Qwen3Config
from storage import Store, queue
from storage.store import fingerprint_key
from tuner import trace
from tuner.compile import start_in_background
from tuner.search import OWNER, StudyOutcome, TuneOptions, owner_is_gone, tune_study
from tuner.worker import Worker

# A holder that has not renewed its lease for this long is taken for dead. A batch of 8 configs
# compiles and times in well under a minute on the H100; the lease is renewed with the trials'
# heartbeats, every half heartbeat interval (tuner.search._beat).
LEASE_S = float(os.environ.get("KERNEL_SEARCH_LEASE_S", "300"))
# How often a worker with nothing to claim looks again. At the end of a tune every worker but the last
# holders waits like this, and the tune ends only when all have seen the queue empty: a long poll is
# idle time on the wall clock.
POLL_S = float(os.environ.get("KERNEL_SEARCH_POLL_S", "1"))


def study_keys(config: Qwen3Config, ops: list[str], buckets: list[int], dtype: str,
               contexts: tuple[int, ...] | None = None, memory_bytes: int = 0) -> list[tuple[str, int]]:
    """(op, m) of every study a tune of `config` covers, in the tune's order: M bucket first, then op.
    Decode attention's M bucket is its batch: at each decode bucket (<= 256) it gets one study per
    context of `contexts` (default: kernel_space.attention_shape.CONTEXT_BUCKETS up to the model's
    max_position_embeddings, which closes the list) whose whole-model KV cache fits in half of
    memory_bytes (0: an 80 GB card's), shortest context first; m is its attention_shape key. A model whose
    heads the attention kernels cannot take (Qwen3Config.attention_unsupported) has no attention studies."""
    contexts = contexts or context_buckets(config.max_position_embeddings)
    if config.attention_unsupported():
        ops = [op for op in ops if ks.get_op(op).kind != "attention"]
    attention = attention_buckets(buckets, contexts, layers=config.num_hidden_layers,
                                  kv_heads=config.num_key_value_heads, head_dim=config.head_dim,
                                  elem_bytes=DTYPE_BYTES[dtype], memory_bytes=memory_bytes or DEFAULT_DEVICE_MEMORY)
    keys = []
    for m in sorted(buckets):
        for op in ops:
            if ks.get_op(op).kind == "attention":
                keys += [(op, encode_m(batch, context)) for batch, context in attention if batch == m]
            else:
                keys.append((op, m))
    return keys


def plan(store: Store, fingerprints: list[dict], config: Qwen3Config, ops: list[str], buckets: list[int],
         dtype: str, trials: int, contexts: tuple[int, ...] | None = None, plan_id: str | None = None) -> list[int]:
    """Queue every study of `config` (study_keys; decode attention's contexts from `contexts`, sized to
    each fingerprint's memory) for each distinct fingerprint; returns their study ids. Priority is M
    first, then op: by the time a bucket's studies start, the bucket below (their warm start) has
    mostly finished, with one worker or with many. plan_id: the tune run (queue.enqueue's `plan`), where
    `tune --gpus` and its workers each plan the same studies: the first to come queues them."""
    dims, ids, seen = config.dims(), [], set()
    for fp in fingerprints:
        key = fingerprint_key(fp)
        if key in seen:
            continue
        seen.add(key)
        order = study_keys(config, ops, buckets, dtype, contexts, int(fp.get("total_memory") or 0))
        for priority, (op, m) in enumerate(order):
            n, k = ks.get_op(op).shape(dims)
            ref = store.study(fp, Problem(op, m, n, k, dtype), config.name)
            queue.enqueue(store, ref.id, model=config.name, trials=trials, priority=priority, plan=plan_id)
            ids.append(ref.id)
    return ids


@dataclass
class Callbacks:
    """What a worker reports as it goes (the CLI's progress display); all optional."""

    on_study: Callable[[str, int, int, bool], None] | None = None  # op, m, budget, shared
    on_trial: Callable[[str, int, int, int, float | None], None] | None = None  # op, m, done, total, best
    on_done: Callable[[StudyOutcome], None] | None = None


@dataclass
class WorkReport:
    outcomes: list[StudyOutcome] = field(default_factory=list)
    helped: int = 0  # shared studies this worker measured trials of


def work(store: Store, fp: dict, opts: TuneOptions, callbacks: Callbacks | None = None, share: bool = True,
         only: list[int] | None = None, owner: str = OWNER, make_worker: Callable = Worker,
         lease_s: float = LEASE_S, wait_s: float = 0.0) -> WorkReport:
    """Drain the queue of fingerprint `fp` (see the module docstring), or only the given study ids of
    it, as `owner`; returns what this worker did. make_worker: the benchmarking child's class.
    wait_s: until this worker has claimed something, an empty queue ends it only after this many
    seconds (a worker started before its tune has queued the studies: `tune --gpus` starts them
    first, so that their imports overlap its planning)."""
    cb, report, fp_key, no_help = callbacks or Callbacks(), WorkReport(), fingerprint_key(fp), set()
    patient_until = time.monotonic() + wait_s
    with make_worker() as worker:
        # Both start in the background while the first claim and study open: the benchmarking child
        # and one batch's worth of compile processes, forked with torch imported, open their CUDA
        # contexts (a no-op where the worker CLI started them already).
        start_in_background(worker, opts.batch, opts.pool_workers)
        while not _past(opts.deadline):
            _reap_dead_holders(store, fp_key, owner)
            claim = queue.claim(store, fp_key, owner, lease_s, share=share, exclude=no_help, only=only)
            if claim is None:
                waiting = not report.outcomes and not report.helped and time.monotonic() < patient_until
                if queue.pending(store, [fp_key], only)["held"] == 0 and not waiting:
                    break  # nothing queued, nothing held by a live worker: done
                time.sleep(min(POLL_S, 0.2) if waiting else POLL_S)  # a plan coming, or a dead holder giving up
                continue
            outcome = _run_claim(store, worker, fp, fp_key, claim, opts, cb, owner, lease_s)
            if claim.shared:
                report.helped += 1
                if outcome.new_trials == 0:
                    no_help.add(claim.study_id)  # its budget is spent: only the holder's confirmation is left
            else:
                report.outcomes.append(outcome)
    return report


def _reap_dead_holders(store: Store, fp_key: str, me: str) -> None:
    """A holder on this host whose process is gone (killed) gives its study back at once: its lease
    would otherwise keep the study from the others until it runs out."""
    for queue_id, holder in queue.holders(store, fp_key):
        if holder != me and owner_is_gone(holder, None):
            queue.release(store, queue_id, holder)


def _run_claim(store, worker, fp, fp_key, claim: queue.Claim, opts: TuneOptions, cb: Callbacks,
               owner: str, lease_s: float) -> StudyOutcome:
    problem = Problem(claim.op, claim.m, claim.n, claim.k, claim.dtype)
    trace.event("study claimed", op=claim.op, m=claim.m, shared=claim.shared)
    if cb.on_study:
        cb.on_study(claim.op, claim.m, claim.trials, claim.shared)
    warm = queue.warm_start_config(store, fp_key, claim.op, claim.n, claim.k, claim.dtype, claim.m)
    heartbeat = None if claim.shared else (lambda: queue.renew(store, claim.queue_id, owner, lease_s))
    on_trial = (lambda done, total, best: cb.on_trial(claim.op, claim.m, done, total, best)) if cb.on_trial else None
    try:
        outcome = tune_study(store, worker, fp, claim.model, problem, replace(opts, trials=claim.trials),
                             warm_start=warm, on_trial=on_trial, shared=claim.shared, heartbeat=heartbeat)
    except BaseException:
        if not claim.shared:
            _release_quietly(store, claim.queue_id, owner)
        raise
    trace.event("study done", op=claim.op, m=claim.m)
    if not claim.shared:  # done even without a winner (its note says why): a re-run queues it again
        queue.finish(store, claim.queue_id, owner)
    if cb.on_done and not claim.shared:
        cb.on_done(outcome)
    return outcome


def _release_quietly(store: Store, queue_id: int, owner: str) -> None:
    """Ctrl-C or a crash: free the study for the others now, if the database lets us. A Ctrl-C that
    landed inside a write can leave this process's own SQLite write lock held until it exits; the
    release then fails after the busy timeout ("database is locked"), and that error must not replace
    the interrupt. The study is not lost: a later worker on this host reaps a holder whose process is
    gone (_reap_dead_holders), others take it when its lease runs out."""
    try:
        queue.release(store, queue_id, owner)
    except Exception as exc:  # whatever it is, the interrupt or crash is what to report
        logging.getLogger(__name__).debug("could not release study queue row %s on the way out: %s", queue_id, exc)


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def gpu_fingerprints(gpus: list[int]) -> dict[int, dict]:
    """The fingerprint of each GPU: identical GPUs share studies, another kind gets its own."""
    from kernel_space.fingerprint import current_fingerprint

    return {i: current_fingerprint(i) for i in gpus}


def study_progress(store: Store, study_ids: list[int]) -> tuple[int, int]:
    """(studies done, distinct configs stored) of a planned tune."""
    return queue.pending(store, only=study_ids)["done"], queue.configs_measured(store, study_ids)[1]
