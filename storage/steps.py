"""Tune in context: end-to-end step checks of dispatch tables, and the rule that keeps a table that
slows the model's decode step down from shipping.

Winners are confirmed op by op (a paired speedup over the unfused path), but a decode step is more
than its ops one after another: what one kernel leaves in L2 is what the next one finds, launches
overlap, the attention and the glue between ops run too. So `tune` ends by timing the model's decode
step (tuner.step_bench, CUDA graph, random weights) in four arms, in one process on one GPU:

    unfused       no table
    table         the new table: what the winners in the database give now (storage.export.build_table),
                  its residual stream in the weights' dtype
    fixed_stream  the new table with its residual stream in fixed point (qwen3.model.STREAM_ENV)
    fold, fold_fixed  at batch 1, the new table with decode attention's combine folded into o_proj
                  (kernel_space.combine_o_proj), its stream in the model dtype and in fixed point
    previous      the table `export` would have written before this tune, when there was one and its
                  choices differ from the new table's (its own stream choice, storage.table)

and records one StepRun (both tables kept whole) with one StepBench per arm and batch size (a
StepStream for the fixed_stream arm, a StepFold for each fold arm).

The new table's step at a batch is the fastest of its variants (two streams, and at batch 1 each with
the fold), and that variant is the table's choice there (Verdict.stream and Verdict.fold; export
writes them as the table's "stream" and "fold", which the model's defaults follow). A batch where
another arm ships keeps that arm's choices: the model dtype and no fold for the unfused path, the
previous table's choices for the previous table.

The rule (decide): at each benched batch the arm with the fastest step ships; a tie goes to the new
table, then the previous one. Where it is not the new table, `export` (shipped_table) replaces the
bucket at M = that batch of every op with what the faster arm runs there: the unfused path, or the
previous table's choice at that M (unfused for an op the previous table did not cover there). Buckets
at M that no step check measured are kept as tuned. Decode attention's buckets have their own rows
(AttentionRow: the step at the bucket's batch over a cache it serves, with the table and with the
default plan): where the plan is faster, export writes the bucket with the arm "plan". The rule
applies only to the table it measured: the latest run whose table_hash is the hash of the table the
winners give now. After a later tune without a step check (or an import) the hash differs and export
writes the winners as they are, and says so.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial

from sqlalchemy import select

from kernel_space.attention_shape import ATTENTION_OP, decode_m, encode_m
from kernel_space.attention_shape import describe as describe_bucket
from kernel_space.spec import UNFUSED_CONFIG
from storage.engine import StorageError
from storage.export import build_table
from storage.models import STEP_ARMS, Fingerprint, StepAttention, StepBench, StepFold, StepRun, StepStream, as_utc
from storage.store import Store, fingerprint_key, fingerprint_row
from storage.table import FOLD_BATCHES, PLAN_ARM, Bucket, DispatchTable, parse_table

# Who wins a tie: the new table (its per-op winners were confirmed), then the previous one.
PREFERENCE = ("table", "previous", "unfused")
# The new table with a fixed-point residual stream: a row arm of its own (stored as a StepStream), not
# a contender beside PREFERENCE's (it is the new table too: Verdict.table_ms takes the faster stream).
STREAM_ARM = "fixed_stream"
# The new table with decode attention's combine folded into o_proj, by the stream it keeps (StepFold rows).
FOLD_ARMS = {"fold": "model", "fold_fixed": "fixed"}
ROW_ARMS = (*STEP_ARMS, STREAM_ARM, *FOLD_ARMS)
# The new table's variants, each with the stream it keeps: a tie goes to the first (no fold, model dtype).
TABLE_ARMS = {"table": "model", STREAM_ARM: "fixed", **FOLD_ARMS}


@dataclass(frozen=True)
class StepRow:
    """One arm at one batch size: the median decode step (ms), its tokens/s and the batch's prefill (ms)."""

    arm: str
    batch: int
    step_ms: float
    tok_s: float
    prefill_ms: float | None = None


@dataclass(frozen=True)
class Verdict:
    """What ships at one benched batch, and the step times (ms) of the arms that were measured."""

    batch: int
    ships: str
    step_ms: dict[str, float]

    @property
    def best_table_arm(self) -> str | None:
        """The fastest of the new table's variants measured at this batch (TABLE_ARMS; a tie goes to the
        earlier one: the model dtype before fixed point, no fold before the fold)."""
        measured = [arm for arm in TABLE_ARMS if arm in self.step_ms]
        return min(measured, key=lambda arm: self.step_ms[arm]) if measured else None

    @property
    def stream(self) -> str | None:
        """The new table's residual stream at this batch: the stream of its fastest variant ("fixed" or
        "model"); None when the fixed point arm was not measured (a check before there was one)."""
        if STREAM_ARM not in self.step_ms or "table" not in self.step_ms:
            return None
        return TABLE_ARMS[self.best_table_arm]

    @property
    def fold(self) -> bool | None:
        """Whether the new table folds decode attention's combine into o_proj at this batch: its fastest
        variant is a fold arm; None when no fold arm was measured (batches above 1, older checks)."""
        if not any(arm in self.step_ms for arm in FOLD_ARMS):
            return None
        return self.best_table_arm in FOLD_ARMS

    @property
    def table_ms(self) -> float | None:
        """The new table's step at its fastest variant (stream and fold)."""
        best = self.best_table_arm
        return self.step_ms[best] if best is not None else None

    @property
    def speedup(self) -> float | None:
        """The new table's step over the unfused one (above 1: the table is faster)."""
        return _ratio(self.step_ms.get("unfused"), self.table_ms)

    @property
    def vs_previous(self) -> float | None:
        """The new table's step over the previous table's (above 1: the new table is faster)."""
        return _ratio(self.step_ms.get("previous"), self.table_ms)


def _ratio(slow: float | None, fast: float | None) -> float | None:
    return slow / fast if slow is not None and fast else None


@dataclass(frozen=True)
class AttentionRow:
    """Decode attention's part of a check at one of the new table's attention buckets (batch, context):
    the decode step over a cache of `slots` (inside the bucket's context interval) with the table
    (table_ms) and with the same table less its attention rows, i.e. the default plan (plan_ms)."""

    batch: int
    context: int
    slots: int
    table_ms: float
    plan_ms: float

    @property
    def ships(self) -> str:
        """'table', or 'plan' where the default plan's step is faster (a tie goes to the table)."""
        return PLAN_ARM if self.plan_ms < self.table_ms else "table"


def table_hash(table: DispatchTable) -> str:
    """A short id of a table's choices (model, dtype, per op its shape, kernel hash and per bucket the
    arm and config), not of its times or creation date: the same winners give the same hash."""
    choices = {
        "model": table.model,
        "dtype": table.dtype,
        "ops": {op: [e.n, e.k, e.kernel_hash, [[b.m, b.arm, b.config] for b in e.buckets]]
                for op, e in sorted(table.ops.items())},
    }
    return hashlib.sha256(json.dumps(choices, sort_keys=True).encode()).hexdigest()[:16]


def decide(rows: list[StepRow]) -> list[Verdict]:
    """The verdict at each batch of `rows` (one run's): the arm with the fastest step, the new table
    at the faster of its streams (Verdict.table_ms), ties going to PREFERENCE's order. Sorted by batch."""
    by_batch: dict[int, dict[str, float]] = defaultdict(dict)
    for row in rows:
        by_batch[row.batch][row.arm] = row.step_ms
    verdicts = []
    for batch in sorted(by_batch):
        times = by_batch[batch]
        contenders = {arm: ms for arm, ms in times.items() if arm not in TABLE_ARMS or arm == "table"}
        if "table" in contenders:
            contenders["table"] = Verdict(batch, "table", times).table_ms
        ships = min(contenders, key=lambda arm: (contenders[arm], PREFERENCE.index(arm)))
        verdicts.append(Verdict(batch, ships, dict(times)))
    return verdicts


def record_run(store: Store, fp: dict, model: str, dtype: str, table: DispatchTable,
               previous: DispatchTable | None, context: int, output_len: int, rows: list[StepRow],
               attention: list[AttentionRow] = ()) -> int:
    """Store one step check (both tables whole, every row, decode attention's rows); returns the run
    id. ValueError for a row that is no measurement (unknown arm, batch < 1, a time that is not a
    finite positive number), rows of a previous arm without the previous table, or an attention row
    of no attention bucket of the table."""
    _check_rows(rows, previous is not None)
    _check_attention(attention, table)
    run = StepRun(model=model, dtype=dtype, table_hash=table_hash(table), table_json=table.to_dict(),
                  previous_hash=table_hash(previous) if previous is not None else None,
                  previous_json=previous.to_dict() if previous is not None else None,
                  context=context, output_len=output_len)
    with store.session() as s:
        run.fingerprint_id = fingerprint_row(s, fp).id
        s.add(run)
        s.flush()
        for row in rows:
            if row.arm in FOLD_ARMS:
                kind = partial(StepFold, stream=FOLD_ARMS[row.arm])
            else:
                kind = StepStream if row.arm == STREAM_ARM else partial(StepBench, arm=row.arm)
            s.add(kind(run_id=run.id, batch=row.batch, step_ms=row.step_ms, tok_s=row.tok_s, prefill_ms=row.prefill_ms))
        for row in attention:
            s.add(StepAttention(run_id=run.id, batch=row.batch, context=row.context, slots=row.slots,
                                table_ms=row.table_ms, plan_ms=row.plan_ms))
        return run.id


def _check_attention(rows: list[AttentionRow], table: DispatchTable) -> None:
    entry = table.ops.get(ATTENTION_OP)
    keys = {b.m for b in entry.buckets} if entry is not None else set()
    for row in rows:
        if encode_m(row.batch, row.context) not in keys:
            raise ValueError(f"attention row batch {row.batch}, context {row.context} is no decode_attention "
                             "bucket of the table")
        for name in ("table_ms", "plan_ms"):
            _check_time(name, getattr(row, name))
        if not 0 < row.slots <= row.context:
            raise ValueError(f"attention row slots {row.slots} is not in the bucket's context (0, {row.context}]")


def _check_rows(rows: list[StepRow], has_previous: bool) -> None:
    if not rows:
        raise ValueError("a step check needs at least one measured row")
    tables = {row.batch for row in rows if row.arm == "table"}
    for row in rows:
        if row.arm not in ROW_ARMS:
            raise ValueError(f"step arm must be one of {ROW_ARMS}, got {row.arm!r}")
        if row.arm == "previous" and not has_previous:
            raise ValueError("rows of the previous arm need the previous table")
        if row.arm in TABLE_ARMS and row.batch not in tables:
            raise ValueError(f"a {row.arm} row needs the table arm's row at its batch ({row.batch})")
        if row.arm in FOLD_ARMS and row.batch not in FOLD_BATCHES:
            raise ValueError(f"a {row.arm} row must be at a batch the fold serves {FOLD_BATCHES}, got {row.batch}")
        if not isinstance(row.batch, int) or row.batch < 1:
            raise ValueError(f"batch must be an int >= 1, got {row.batch!r}")
        for name in ("step_ms", "tok_s", "prefill_ms"):
            value = getattr(row, name)
            if value is not None or name != "prefill_ms":
                _check_time(name, value)


def _check_time(name: str, value) -> None:
    """ValueError unless value is a measured time: a finite number > 0."""
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class RunInfo:
    """A stored step check: its tables (parsed back) and its rows."""

    id: int
    fingerprint_key: str
    model: str
    dtype: str
    table_hash: str
    table: DispatchTable
    previous_hash: str | None
    previous: DispatchTable | None
    context: int
    output_len: int
    created_at: datetime
    rows: list[StepRow] = field(default_factory=list)
    attention: list[AttentionRow] = field(default_factory=list)

    @property
    def verdicts(self) -> list[Verdict]:
        return decide(self.rows)


def latest_run(store: Store, fp_key: str, model: str, dtype: str, hash_: str | None = None) -> RunInfo | None:
    """The newest step check of (fingerprint, model, dtype), of the table with `hash_` if given."""
    stmt = (select(StepRun, Fingerprint.key).join(Fingerprint, StepRun.fingerprint_id == Fingerprint.id)
            .where(Fingerprint.key == fp_key, StepRun.model == model, StepRun.dtype == dtype)
            .order_by(StepRun.id.desc()).limit(1))
    if hash_ is not None:
        stmt = stmt.where(StepRun.table_hash == hash_)
    with store.session(write=False) as s:
        found = s.execute(stmt).first()
        if found is None:
            return None
        return _run_info(s, found[0], found[1])


def runs(store: Store, run_ids: list[int]) -> list[RunInfo]:
    """The step checks with these ids, in the order given."""
    stmt = (select(StepRun, Fingerprint.key).join(Fingerprint, StepRun.fingerprint_id == Fingerprint.id)
            .where(StepRun.id.in_(run_ids)))
    with store.session(write=False) as s:
        found = {run.id: _run_info(s, run, key) for run, key in s.execute(stmt)}
    return [found[i] for i in run_ids if i in found]


def _run_info(s, run: StepRun, key: str) -> RunInfo:
    rows = [StepRow(r.arm, r.batch, r.step_ms, r.tok_s, r.prefill_ms) for r in s.scalars(
        select(StepBench).where(StepBench.run_id == run.id).order_by(StepBench.batch, StepBench.id))]
    rows += [StepRow(STREAM_ARM, r.batch, r.step_ms, r.tok_s, r.prefill_ms) for r in s.scalars(
        select(StepStream).where(StepStream.run_id == run.id).order_by(StepStream.batch))]
    fold_arm = {stream: arm for arm, stream in FOLD_ARMS.items()}
    rows += [StepRow(fold_arm[r.stream], r.batch, r.step_ms, r.tok_s, r.prefill_ms) for r in s.scalars(
        select(StepFold).where(StepFold.run_id == run.id).order_by(StepFold.batch, StepFold.id))]
    attention = s.scalars(select(StepAttention).where(StepAttention.run_id == run.id)
                          .order_by(StepAttention.context, StepAttention.batch))
    return RunInfo(
        run.id, key, run.model, run.dtype, run.table_hash, parse_table(run.table_json), run.previous_hash,
        parse_table(run.previous_json) if run.previous_json is not None else None, run.context, run.output_len,
        run.created_at, sorted(rows, key=lambda r: r.batch),
        [AttentionRow(r.batch, r.context, r.slots, r.table_ms, r.plan_ms) for r in attention])


def apply_verdicts(table: DispatchTable, previous: DispatchTable | None, verdicts: list[Verdict],
                   attention: list[AttentionRow] = ()) -> tuple[DispatchTable, dict[int, list[str]]]:
    """`table` with the bucket at M = b of every op replaced where the verdict at batch b is not the
    table (see the module docstring), and {b: ops whose bucket changed}. Buckets at other M are kept.
    Decode attention's buckets, keyed by batch and context (kernel_space.attention_shape), follow
    their own rows: where the default plan's step was faster, the bucket's arm becomes "plan" (listed
    under its batch as "decode_attention ctx=C"); unmeasured ones are kept as tuned. The table's stream
    and fold choices (storage.table) are set at every batch whose verdict has them (see the module
    docstring)."""
    vetoed = {v.batch: v.ships for v in verdicts if v.ships != "table"}
    stream, fold = _streams(table, previous, verdicts), _folds(table, previous, verdicts)
    ops, changed = {}, defaultdict(list)
    for name, entry in table.ops.items():
        if name == ATTENTION_OP:
            ops[name], replaced = _plan_where_faster(entry, attention)
            for m in replaced:
                batch, context = decode_m(m)
                changed[batch].append(f"{ATTENTION_OP} ctx={context}")
            continue
        before = previous.ops.get(name) if previous is not None else None
        if before is not None and (before.n, before.k, before.kernel_hash) != (entry.n, entry.k, entry.kernel_hash):
            before = None  # another shape or kernel source: the previous arm ran it unfused
        buckets = []
        for bucket in entry.buckets:
            arm = vetoed.get(bucket.m)
            new = bucket if arm is None else _fallback(bucket, before if arm == "previous" else None)
            if (new.arm, new.config) != (bucket.arm, bucket.config):
                changed[bucket.m].append(name)
            buckets.append(new)
        ops[name] = replace(entry, buckets=tuple(buckets))
    return replace(table, ops=ops, stream=stream, fold=fold), dict(changed)


def _streams(table: DispatchTable, previous: DispatchTable | None, verdicts: list[Verdict]) -> tuple:
    """The shipped table's (batch, stream) choices: the new table's faster stream where it ships, the
    model dtype where the unfused path does, the previous table's choice where it does; the new
    table's own choices at batches no verdict of this check decided."""
    chosen = dict(table.stream)
    for v in verdicts:
        if v.stream is None:
            continue
        if v.ships == "table":
            chosen[v.batch] = v.stream
        elif v.ships == "unfused":
            chosen[v.batch] = "model"
        else:
            chosen[v.batch] = previous.stream_at(v.batch)
    return tuple(sorted(chosen.items()))


def _folds(table: DispatchTable, previous: DispatchTable | None, verdicts: list[Verdict]) -> tuple[int, ...]:
    """The shipped table's fold batches: where the new table ships, its verdict's; where the unfused
    path does, none; where the previous table does, the previous table's choice; the new table's own
    at batches no verdict decided."""
    chosen = set(table.fold)
    for v in verdicts:
        if v.fold is None:
            continue
        keep = v.fold if v.ships == "table" else v.ships == "previous" and previous.folds_at(v.batch)
        (chosen.add if keep else chosen.discard)(v.batch)
    return tuple(sorted(chosen))


def _plan_where_faster(entry, attention: list[AttentionRow]):
    """decode_attention's entry with the arm "plan" at each bucket whose row says the plan was faster,
    and the M keys it changed."""
    plan = {encode_m(r.batch, r.context) for r in attention if r.ships == PLAN_ARM}
    buckets = tuple(replace(b, arm=PLAN_ARM, config={}) if b.m in plan and b.arm != PLAN_ARM else b
                    for b in entry.buckets)
    changed = [b.m for b, old in zip(buckets, entry.buckets, strict=True) if b is not old]
    return replace(entry, buckets=buckets), changed


def _fallback(bucket: Bucket, before) -> Bucket:
    """What runs at bucket.m instead: the previous table's choice there (`before`: its op entry), or
    the unfused path (its time is the bucket's baseline)."""
    if before is not None and bucket.m <= before.buckets[-1].m:
        old = before.lookup(bucket.m)
        return replace(old, m=bucket.m, config=dict(old.config))
    return replace(bucket, arm="unfused", config=dict(UNFUSED_CONFIG), median_us=bucket.baseline_us, speedup=1.0)


@dataclass(frozen=True)
class Shipped:
    """What `export` writes: the table, the per-op winners' table it came from (raw) and its hash, the
    step check that decided it (None: no check of this table) and which buckets that check replaced
    ({batch: ops})."""

    table: DispatchTable
    raw: DispatchTable
    raw_hash: str
    run: RunInfo | None
    replaced: dict[int, list[str]]

    def record(self) -> dict | None:
        """The table file's "step_check" entry: which run decided, the step times and what ships."""
        if self.run is None:
            return None
        return {
            "table_hash": self.raw_hash,
            "measured": utc_text(self.run.created_at),
            "context": self.run.context,
            "previous_hash": self.run.previous_hash,
            "batches": [{"batch": v.batch, "ships": v.ships, **({"stream": v.stream} if v.stream else {}),
                         **({"fold": v.fold} if v.fold is not None else {}),
                         **{f"{arm}_ms": round(ms, 4) for arm, ms in v.step_ms.items()}}
                        for v in self.run.verdicts],
            "replaced": {str(batch): ops for batch, ops in sorted(self.replaced.items())},
            "attention": [{"batch": r.batch, "context": r.context, "slots": r.slots, "table_ms": round(r.table_ms, 4),
                           "plan_ms": round(r.plan_ms, 4), "ships": r.ships} for r in self.run.attention],
        }

    def to_dict(self) -> dict:
        """The table as export writes it: format 1 (2 with decode attention), plus "step_check" when a
        check decided it (readers ignore keys they do not know)."""
        data = self.table.to_dict()
        record = self.record()
        if record is not None:
            data["step_check"] = record
        return data


def utc_text(when: datetime) -> str:
    """A stored time as ISO 8601 UTC ('Z')."""
    return as_utc(when).strftime("%Y-%m-%dT%H:%M:%SZ")


def shipped_table(store: Store, model: str, fingerprint: str | None = None, dtype: str = "bfloat16") -> Shipped:
    """The table `export` writes for `model`: build_table's (same arguments, same errors), with the
    verdicts of the latest step check of exactly that table applied."""
    table = build_table(store, model, fingerprint, dtype)
    hash_ = table_hash(table)
    run = latest_run(store, fingerprint_key(table.fingerprint), table.model, table.dtype, hash_)
    if run is None:
        return Shipped(table, table, hash_, None, {})
    shipped, replaced = apply_verdicts(table, run.previous, run.verdicts, run.attention)
    return Shipped(shipped, table, hash_, run, replaced)


def shipped_or_none(store: Store, model: str, fp_key: str, dtype: str) -> DispatchTable | None:
    """The table export would write for (model, fingerprint, dtype) now; None when there are no winners."""
    try:
        return shipped_table(store, model, fp_key, dtype).table
    except StorageError:
        return None


def describe(verdicts: list[Verdict], replaced: dict[int, list[str]],
             attention: list[AttentionRow] = ()) -> list[str]:
    """Plain lines on what ships: one when the new table wins everywhere, else one per batch it lost;
    then one for decode attention's buckets when they were measured (one per bucket the plan won)."""
    lost = [v for v in verdicts if v.ships != "table"]
    if not lost:
        batches = ", ".join(str(v.batch) for v in verdicts)
        head = [f"the new table ships: its decode step is the fastest at every batch measured ({batches})"]
    else:
        head = _lost_lines(lost, replaced)
    return head + _stream_lines(verdicts) + _fold_lines(verdicts) + _attention_lines(attention)


def _stream_lines(verdicts: list[Verdict]) -> list[str]:
    """One line on the new table's residual stream, where the check measured it."""
    measured = [v for v in verdicts if v.stream is not None]
    if not measured:
        return []
    parts = []
    for stream, name in (("fixed", "fixed point"), ("model", "the model dtype")):
        picked = [v for v in measured if v.stream == stream]
        if picked:
            times = "; ".join("{:.3f} vs {:.3f} ms".format(*_stream_pair(v)) for v in picked)
            parts.append(f"{name} at batch {', '.join(str(v.batch) for v in picked)} ({times}, fixed vs model)")
    return ["residual stream of the new table: " + "; ".join(parts)]


def _stream_pair(v: Verdict) -> tuple[float, float]:
    """(fixed point, model dtype) step ms of the new table, both folded where the fold ships."""
    if v.fold and all(arm in v.step_ms for arm in FOLD_ARMS):
        return v.step_ms["fold_fixed"], v.step_ms["fold"]
    return v.step_ms[STREAM_ARM], v.step_ms["table"]


def _fold_lines(verdicts: list[Verdict]) -> list[str]:
    """One line a batch where the check measured the fold of decode attention's combine into o_proj."""
    lines = []
    for v in verdicts:
        if v.fold is None:
            continue
        fold = min(v.step_ms[arm] for arm in FOLD_ARMS if arm in v.step_ms)
        plain = min(v.step_ms[arm] for arm in ("table", STREAM_ARM) if arm in v.step_ms)
        lines.append(f"decode attention's combine folded into o_proj at batch {v.batch}: "
                     f"{'yes' if v.fold else 'no'} ({fold:.3f} ms folded vs {plain:.3f} ms not)")
    return lines


def _attention_lines(attention: list[AttentionRow]) -> list[str]:
    if not attention:
        return []
    plans = [r for r in attention if r.ships == PLAN_ARM]
    lines = [f"decode attention: the table's tuned config ships at {len(attention) - len(plans)} of "
             f"{len(attention)} buckets measured in the step"]
    for r in plans:
        lines.append(f"{describe_bucket(ATTENTION_OP, encode_m(r.batch, r.context))}: the default plan's step is "
                     f"faster over a cache of {r.slots} slots ({r.plan_ms:.3f} ms vs {r.table_ms:.3f} ms with the "
                     "tuned config): export writes the plan there")
    return lines


def _lost_lines(lost: list[Verdict], replaced: dict[int, list[str]]) -> list[str]:
    lines = []
    for v in lost:
        ops = [op for op in replaced.get(v.batch, []) if not op.startswith(ATTENTION_OP)]
        what = "the unfused path" if v.ships == "unfused" else "the previous table's choices"
        change = (f"export writes {what} at M={v.batch} for {len(ops)} op{'s' * (len(ops) != 1)} "
                  f"({', '.join(ops)})") if ops else f"no bucket at M={v.batch} differs from {what}"
        arm = "unfused" if v.ships == "unfused" else "previous table's"
        table_ms = v.table_ms
        versus = f" vs {table_ms:.3f} ms with the new table" if table_ms is not None else ""
        lines.append(f"batch {v.batch}: the {arm} step is faster ({v.step_ms[v.ships]:.3f} ms{versus}): {change}")
    return lines
