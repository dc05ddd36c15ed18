"""Tune in context: after a tune, time the model's decode step with the new dispatch table, with no
table and with the table shipped before the tune, and store it (storage.steps says what ships).

It reuses `kernel-search bench`'s measurement (qwen3.bench.bench_arms: random weights, a prefill of
CONTEXT tokens a sequence, CUDA-graph decode, the median of REPEATS runs), kept short: a few seconds
an arm on a GPU. The arms run twice, in one order and then in the reverse one (one model, A B B A),
and each arm's time is the mean of its two, after one cell that is thrown away (bench_arms does:
qwen3.bench.first_cell). On an H100 the first cell of a process ran the unfused batch-1 step 13%
faster (1.75 ms) than the same step measured after any other cell (2.02 ms, benchmarks/results/
attention_s7_H100_2026-11-26/*order_probe*; why is not known), and the arm measured first was always
the unfused one.

The new table runs twice, its residual stream in the weights' dtype (arm "table") and in fixed point
(STREAM_ARM): which is faster differs by model and batch (on an H200 fixed point gained 5% at 0.6B
batch 1 and lost 16% at batch 8), so the check measures it on the GPU at hand, like a fusion. At
batch 1 it runs twice more, with decode attention's combine folded into o_proj (FOLD_ARMS, one a
stream; kernel_space.combine_o_proj): on an H200 that made Qwen3-0.6B's step 2-5% faster and 1.7B's
no faster, so it is measured too.

A table with decode attention buckets is also timed at each of them (measure_attention): the step at
the bucket's batch over caches inside the bucket's context interval (near its low end and at its
middle), with the table and with the same table less its attention rows (the default plan). A tuned
attention config is timed alone at its bucket's largest context; in the step, over the caches it
serves, it was up to 6.6% slower than the plan on an H100 (benchmarks/README.md, sixth session).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from kernel_space.attention_shape import ATTENTION_OP, decode_m
from kernel_space.buckets import DECODE_BUCKETS
from qwen3.config import Qwen3Config
from storage import Store
from storage.export import build_table
from storage.steps import (
    FOLD_ARMS,
    STREAM_ARM,
    AttentionRow,
    StepRow,
    Verdict,
    apply_verdicts,
    decide,
    record_run,
    shipped_or_none,
    table_hash,
)
from storage.store import fingerprint_key
from storage.table import FOLD_BATCHES, DispatchTable

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
    attention: list[AttentionRow] = field(default_factory=list)
    attention_skipped: list[str] = field(default_factory=list)  # cells left out, a line each


def attention_cells(table: DispatchTable, batches: list[int]) -> list[tuple[int, int, int]]:
    """(batch, context, slots) cells for each fused decode_attention bucket of `table` whose batch is one
    of `batches`: caches of `slots` that the bucket serves, inside (the tuned context below it, its
    context]. Two a bucket: near its low end (the context below plus two runs of OUTPUT_LEN steps: a
    prompt just past the bucket below, decoding) and at the geometric middle (half the first context).
    A config tuned at the bucket's top runs all of them, and on an H100 the 0.6B batch-1 config of
    (256, 1k] that won at 512 slots was 2.4% slower at 320 (benchmarks/README.md, seventh session).
    A bucket of at most OUTPUT_LEN slots has no cell (no prompt fits before the decode steps): it is
    kept as tuned."""
    entry = table.ops.get(ATTENTION_OP)
    if entry is None:
        return []
    keys = [(decode_m(b.m), b.arm) for b in entry.buckets]
    contexts = sorted({context for (_, context), _ in keys})
    cells = []
    for (batch, context), arm in sorted(keys, key=lambda k: (k[0][1], k[0][0])):
        if arm != "fused" or batch not in batches or context <= OUTPUT_LEN:
            continue
        below = max((c for c in contexts if c < context), default=0)
        middle = math.isqrt(below * context) if below else context // 2
        for slots in sorted({below + 2 * OUTPUT_LEN, middle}):
            cells.append((batch, context, min(context, max(slots, below + 1, OUTPUT_LEN + 1))))
    return list(dict.fromkeys(cells))


def measure_attention(config: Qwen3Config, table: DispatchTable, cells: list[tuple[int, int, int]], dtype: str,
                      progress: Callable[[str], None] | None = None,
                      skipped: list[str] | None = None) -> list[AttentionRow]:
    """The decode step at each cell (attention_cells) with `table` and with `table` less its
    decode_attention entry (the default plan), on this process's GPU, one model for all; at each cell
    the two arms run table, plan, plan, table and each arm's time is the mean of its two. One row a
    bucket: its cell where the tuned config fares worst against the plan (the tuned config ships only
    where it is faster at every cell). A cell that runs out of GPU memory (its prefill, at a long
    context) is left out (a bucket with no cell left is kept as tuned) and a line saying so goes to
    `skipped`; any other error is not caught."""
    import torch

    from qwen3.bench import bench_cell, random_weights
    from qwen3.dispatch import Dispatcher

    progress = progress or (lambda text: None)
    plan = replace(table, ops={op: e for op, e in table.ops.items() if op != ATTENTION_OP})
    model = random_weights(config, getattr(torch, dtype), "cuda", 0)
    rows = []
    for batch, context, slots in cells:
        step_ms = {"table": 0.0, "plan": 0.0}
        try:
            for arm, arm_table in (("table", table), ("plan", plan), ("plan", plan), ("table", table)):
                model.set_dispatcher(Dispatcher(arm_table))
                progress(f"decode attention, {arm}: batch {batch}, cache of {slots} slots")
                step_ms[arm] += bench_cell(model, arm, batch, slots - OUTPUT_LEN, OUTPUT_LEN, REPEATS).decode_ms / 2
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if skipped is not None:
                skipped.append(f"decode attention at batch {batch} over a cache of {slots} slots ran out of GPU "
                               f"memory: its bucket (ctx={context}) is kept as tuned")
            continue
        row = AttentionRow(batch, context, slots, step_ms["table"], step_ms["plan"])
        if rows and (rows[-1].batch, rows[-1].context) == (batch, context):
            if row.table_ms / row.plan_ms > rows[-1].table_ms / rows[-1].plan_ms:
                rows[-1] = row
            continue
        rows.append(row)
    return rows


def with_stream(table: DispatchTable, batches: list[int], stream: str) -> DispatchTable:
    """`table` keeping its residual stream in `stream` ("model" or "fixed") at each of `batches`."""
    return replace(table, stream=tuple((batch, stream) for batch in sorted(batches)))


def with_fold(table: DispatchTable, batches: list[int]) -> DispatchTable:
    """`table` folding decode attention's combine into o_proj at each of `batches` (FOLD_BATCHES only)."""
    return replace(table, fold=tuple(sorted(batches)))


def measure(config: Qwen3Config, arms: list[tuple[str, DispatchTable | None]], batches: list[int], dtype: str,
            progress: Callable[[str], None] | None = None,
            arm_batches: dict[str, list[int]] | None = None) -> list[StepRow]:
    """Each arm's decode step at each batch (at arm_batches' where it names the arm) on this process's GPU
    (qwen3.bench.bench_arms)."""
    import torch

    from qwen3.bench import bench_arms
    from qwen3.dispatch import Dispatcher

    named = [(arm, Dispatcher(table)) for arm, table in arms]
    times: dict[tuple[str, int], list] = {}
    # Each arm once early and once late (module docstring): A B B A on one model, which also cancels a
    # drift that grows linearly with the time the check has run.
    arm_batches = arm_batches or {}
    for r in bench_arms(config, named + named[::-1], batches, [CONTEXT], OUTPUT_LEN, dtype=getattr(torch, dtype),
                        repeats=REPEATS, progress=progress, arm_batches=arm_batches):
        times.setdefault((r.arm, r.batch), []).append((r.decode_ms, r.prefill_ms))
    rows = []
    for arm, _ in named:
        for batch in arm_batches.get(arm, batches):
            step_ms = sum(t[0] for t in times[arm, batch]) / len(times[arm, batch])
            prefill_ms = sum(t[1] for t in times[arm, batch]) / len(times[arm, batch])
            rows.append(StepRow(arm, batch, step_ms, batch * 1000 / step_ms, prefill_ms))
    return rows


def step_check(store: Store, config: Qwen3Config, dtype: str, fp: dict, previous: DispatchTable | None,
               batches: list[int], progress: Callable[[str], None] | None = None) -> StepCheck:
    """Build the new table from the winners of fingerprint `fp`, time the step in each arm (measure),
    store the run and return it with its verdicts. StorageError when there are no winners to build a
    table from; whatever the measurement raises (a CUDA error, out of memory) is not caught here."""
    table = build_table(store, config.name, fingerprint_key(fp), dtype)
    new_hash = table_hash(table)
    # The new table twice: its stream in the model dtype and in fixed point, at every batch checked
    # (storage.steps: the faster ships, and becomes the table's stream choice there).
    arms: list[tuple[str, DispatchTable | None]] = [
        ("unfused", None), ("table", with_stream(table, batches, "model")),
        (STREAM_ARM, with_stream(table, batches, "fixed"))]
    # And where a batch is one the fold serves, both streams again with the fold there; not for a model
    # whose attention runs PyTorch's SDPA (heads the kernels cannot take): it leaves no combine to fold.
    folded = [] if config.attention_unsupported() else [batch for batch in batches if batch in FOLD_BATCHES]
    if folded:
        arms += [(arm, with_fold(with_stream(table, folded, stream), folded)) for arm, stream in FOLD_ARMS.items()]
    if previous is None:
        no_previous = "no table for this GPU before this tune"
    elif table_hash(previous) == new_hash:
        no_previous, previous = "the previous table made the same choices", None
    else:
        no_previous = None
        arms.append(("previous", previous))
    rows = measure(config, arms, batches, dtype, progress, {arm: folded for arm in FOLD_ARMS})
    cells, skipped = attention_cells(table, batches), []
    attention = measure_attention(config, table, cells, dtype, progress, skipped) if cells else []
    run_id = record_run(store, fp, config.name, dtype, table, previous, CONTEXT, OUTPUT_LEN, rows, attention)
    verdicts = decide(rows)
    _, replaced = apply_verdicts(table, previous, verdicts, attention)
    return StepCheck(run_id, new_hash, rows, verdicts, replaced, no_previous, attention, skipped)
