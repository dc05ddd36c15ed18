"""Tune in context: after a tune, time the model's decode step with the new dispatch table, with no
table and with the table shipped before the tune, and store it (storage.steps says what ships).

It reuses `kernel-search bench`'s measurement (qwen3.bench.bench_arms: random weights, a prefill of
CONTEXT tokens a sequence, CUDA-graph decode, the median of REPEATS runs), kept short: a few seconds
an arm on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kernel_space.buckets import DECODE_BUCKETS
from qwen3.config import Qwen3Config
from storage import Store
from storage.export import build_table
from storage.steps import StepRow, Verdict, apply_verdicts, decide, record_run, shipped_or_none, table_hash
from storage.store import fingerprint_key
from storage.table import DispatchTable

CONTEXT = 128  # prompt tokens in the cache when decoding starts (the bench command's default)
OUTPUT_LEN = 32  # decode steps a timed run takes
REPEATS = 3
MAX_BATCH = DECODE_BUCKETS[-1]  # the largest CUDA-graph batch: a step check times decode batches


def default_batches(buckets: list[int]) -> list[int]:
    """The batches a tune checks unless told: its decode buckets (M up to MAX_BATCH)."""
    return [m for m in sorted(buckets) if m <= MAX_BATCH]


def previous_table(store: Store, model: str, fp: dict, dtype: str) -> DispatchTable | None:
    """What `export` would write for (model, this GPU, dtype) now, before the tune: the previous arm."""
    return shipped_or_none(store, model, fingerprint_key(fp), dtype)


@dataclass
class StepCheck:
    """A stored step check: its run id, the new table's hash, the rows, the verdicts, what export will
    replace ({batch: ops}), and why the previous arm was left out (None when it ran)."""

    run_id: int
    table_hash: str
    rows: list[StepRow]
    verdicts: list[Verdict]
    replaced: dict[int, list[str]]
    no_previous: str | None


def measure(config: Qwen3Config, arms: list[tuple[str, DispatchTable | None]], batches: list[int], dtype: str,
            progress: Callable[[str], None] | None = None) -> list[StepRow]:
    """Each arm's decode step at each batch on this process's GPU (qwen3.bench.bench_arms)."""
    import torch

    from qwen3.bench import bench_arms
    from qwen3.dispatch import Dispatcher

    named = [(arm, Dispatcher(table)) for arm, table in arms]
    rows = bench_arms(config, named, batches, [CONTEXT], OUTPUT_LEN, dtype=getattr(torch, dtype), repeats=REPEATS,
                      progress=progress)
    return [StepRow(r.arm, r.batch, r.decode_ms, r.tokens_per_s, r.prefill_ms) for r in rows]


def step_check(store: Store, config: Qwen3Config, dtype: str, fp: dict, previous: DispatchTable | None,
               batches: list[int], progress: Callable[[str], None] | None = None) -> StepCheck:
    """Build the new table from the winners of fingerprint `fp`, time the step in each arm (measure),
    store the run and return it with its verdicts. StorageError when there are no winners to build a
    table from; whatever the measurement raises (a CUDA error, out of memory) is not caught here."""
    table = build_table(store, config.name, fingerprint_key(fp), dtype)
    new_hash = table_hash(table)
    arms: list[tuple[str, DispatchTable | None]] = [("unfused", None), ("table", table)]
    if previous is None:
        no_previous = "no table for this GPU before this tune"
    elif table_hash(previous) == new_hash:
        no_previous, previous = "the previous table made the same choices", None
    else:
        no_previous = None
        arms.append(("previous", previous))
    rows = measure(config, arms, batches, dtype, progress)
    run_id = record_run(store, fp, config.name, dtype, table, previous, CONTEXT, OUTPUT_LEN, rows)
    verdicts = decide(rows)
    _, replaced = apply_verdicts(table, previous, verdicts)
    return StepCheck(run_id, new_hash, rows, verdicts, replaced, no_previous)
