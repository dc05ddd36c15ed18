"""Dispatch tables in and out of the database: build one from the winners, record one as winners.

An imported table lands as ordinary rows (fingerprint, shapes, model links, studies, winners), so a
table measured on another GPU shows up in the queries beside local results. It carries no trials;
its cuBLAS and floor times (when the table has them) fill those columns, so `query --beats-cublas`
answers for an imported table as for a local tune.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import and_, func, or_, select

from kernel_space.attention_shape import ATTENTION_OP, decode_heads, decode_m
from kernel_space.spec import UNFUSED_CONFIG
from storage.engine import StorageError
from storage.models import Fingerprint, ModelShape, Shape, Study, Winner, as_utc, utcnow
from storage.store import Store, dtype_name, fingerprint_row, link_model, shape_row, study_row, upsert_winner
from storage.table import (
    OPTIONAL_TIMES,
    PLAN_ARM,
    Bucket,
    DispatchTable,
    OpEntry,
    TableError,
    load_table,
    parse_table,
)

# The winner fields a table holds; an import compares only these with an existing winner.
TABLE_WINNER_FIELDS = ("arm", "config", "median_us", "unfused_us", "speedup")


def model_names(store: Store) -> dict[str, list[str]]:
    """Models that have winners -> their dtypes."""
    stmt = (select(ModelShape.model, ModelShape.dtype).distinct()
            .join(Study, Study.shape_id == ModelShape.shape_id).join(Winner, Winner.study_id == Study.id)
            .order_by(ModelShape.model, ModelShape.dtype))
    names = defaultdict(list)
    with store.session(write=False) as s:
        for model, dtype in s.execute(stmt):
            names[model].append(dtype)
    return dict(names)


def _model_winners(model: str, dtype, *columns):
    """SELECT columns over the winners of `model`'s shapes in `dtype`, joined to their study, shape,
    fingerprint and the model's link to the shape."""
    return (select(*columns).select_from(Winner)
            .join(Study, Winner.study_id == Study.id)
            .join(Shape, Study.shape_id == Shape.id)
            .join(Fingerprint, Study.fingerprint_id == Fingerprint.id)
            .join(ModelShape, and_(ModelShape.shape_id == Shape.id, ModelShape.model == model))
            .where(Shape.dtype == dtype_name(dtype)))


def winner_fingerprints(store: Store, model: str, dtype) -> list[str]:
    """Keys of the fingerprints that hold winners of `model` in `dtype`, sorted: export needs --gpu
    when there are several (a host of mixed GPUs, or a table imported beside a tune on new kernels)."""
    with store.session(write=False) as s:
        return list(s.scalars(_model_winners(model, dtype, Fingerprint.key).distinct().order_by(Fingerprint.key)))


def build_table(store: Store, model: str, fingerprint_key: str | None = None,
                dtype: str = "bfloat16") -> DispatchTable:
    """The dispatch table of `model` from the winners of its shapes on one fingerprint.

    fingerprint_key: a key, a prefix of one, or part of the device name; it must match exactly one
    fingerprint with winners for the model. None works when only one has. StorageError otherwise,
    listing the candidates. The result is checked by storage.table.parse_table.
    """
    dtype = dtype_name(dtype)
    stmt = _model_winners(model, dtype, Fingerprint, Shape, Study.m, Winner, ModelShape.id.label("link_id"))
    with store.session(write=False) as s:
        if fingerprint_key:
            stmt = stmt.where(or_(Fingerprint.key.startswith(fingerprint_key.lower(), autoescape=True),
                                  func.lower(Fingerprint.device_name).contains(fingerprint_key.lower(),
                                                                               autoescape=True)))
        rows = s.execute(stmt).all()
    if not rows:
        raise StorageError(_no_rows(store, model, dtype, fingerprint_key))
    by_key = defaultdict(list)
    for row in rows:
        by_key[row.Fingerprint.key].append(row)
    if len(by_key) > 1:
        listed = "; ".join(f"{key} ({rs[0].Fingerprint.device_name}, {len(rs)} winners)" for key, rs in by_key.items())
        what = f"{fingerprint_key!r} matches" if fingerprint_key else "has winners on"
        raise StorageError(f"model {model!r} ({dtype}) {what} {len(by_key)} fingerprints, pick one "
                           f"by key (--gpu): {listed}")
    fp = rows[0].Fingerprint
    ops: dict[str, dict] = {}
    for row in sorted(rows, key=lambda r: (r.link_id, r.m)):
        shape, win = row.Shape, row.Winner
        entry = ops.setdefault(shape.op, {"N": shape.n, "K": shape.k,
                                          "kernel_hash": fp.kernel_hashes.get(shape.op, ""), "buckets": []})
        entry["buckets"].append({
            "m": row.m, "arm": win.arm,
            "config": dict(UNFUSED_CONFIG) if win.arm == "unfused" else dict(win.config),
            "median_us": win.median_us, "baseline_us": win.unfused_us, "speedup": win.speedup,
            "cublas_us": win.cublas_us, "floor_us": win.floor_us,
        })
    entries = {op: OpEntry(e["N"], e["K"], e["kernel_hash"], tuple(Bucket(**b) for b in e["buckets"]))
               for op, e in ops.items()}
    # Through to_dict, so decode attention's keys are spelled out as the format asks; then checked.
    return parse_table(DispatchTable(model=model, dtype=dtype, created=utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
                                     fingerprint=fingerprint_dict(fp), ops=entries).to_dict())


def fingerprint_dict(fp: Fingerprint) -> dict:
    """A fingerprint row back in kernel_space.fingerprint's form, so that its key comes out the same."""
    return {
        "device_name": fp.device_name,
        "capability": [int(part) for part in fp.capability.split(".")],
        "sm_count": fp.sm_count,
        "total_memory": fp.total_memory,
        "driver": fp.driver,
        "cuda": fp.cuda,
        "torch": fp.torch,
        "triton": fp.triton,
        "kernel_hashes": dict(fp.kernel_hashes),
    }


def _no_rows(store: Store, model: str, dtype: str, fingerprint_key: str | None) -> str:
    known = model_names(store)
    if not known:
        return "the database has no winners yet (tune a model first, or import a table)"
    if model in known and dtype not in known[model]:
        return f"model {model!r} has winners in {', '.join(known[model])}, none in {dtype}"
    if model in known and fingerprint_key:
        return f"no winners for model {model!r} ({dtype}) on a fingerprint matching {fingerprint_key!r}"
    listed = ", ".join(f"{name} ({', '.join(dtypes)})" for name, dtypes in known.items())
    return f"no winners for model {model!r}; models with winners: {listed}"


@dataclass(frozen=True)
class ImportSummary:
    """What import_table recorded."""

    model: str
    dtype: str
    device_name: str
    fingerprint_key: str
    ops: int
    buckets: int
    added: int
    replaced: int
    unchanged: int
    plans: int = 0  # decode attention buckets on the default plan: a step check's verdict, not a winner
    streams: int = 0  # the table's residual stream choices (batches): a step check's verdict too
    folds: int = 0  # the batches it folds decode attention's combine into o_proj at: a verdict too

    def __str__(self) -> str:
        plans = (f"; {self.plans} decode attention bucket{'s' * (self.plans != 1)} on the default plan not "
                 "imported (a step check's verdict, not a winner)") if self.plans else ""
        streams = (f"; its residual stream choice at {self.streams} batch{'es' * (self.streams != 1)} not "
                   "imported (a step check's verdict: a tune's check chooses again)") if self.streams else ""
        if self.folds:
            streams += (f"; its fold of the attention's combine into o_proj at {self.folds} batch"
                        f"{'es' * (self.folds != 1)} not imported (a step check's verdict too)")
        return (f"imported {self.model} ({self.dtype}) for {self.device_name} [{self.fingerprint_key}]: "
                f"{self.ops} ops, {self.buckets} buckets; winners {self.added} added, "
                f"{self.replaced} replaced, {self.unchanged} unchanged{plans}{streams}")


def import_table(store: Store, table_or_path: DispatchTable | dict | str | Path) -> ImportSummary:
    """Check a dispatch table (TableError names the first bad field) and record its buckets as the
    winners of their studies, all in one transaction. Beyond the format, every op must be one this
    version knows and every fused config one its check accepts at the bucket's shape. Winners equal
    on the table's fields are kept as they are (a table without cuBLAS/floor times keeps the local
    ones); different ones are replaced."""
    if isinstance(table_or_path, DispatchTable):
        table = parse_table(table_or_path.to_dict())
    else:
        table = load_table(table_or_path)
    check_runnable(table)
    confirmed = _parse_time(table.created)
    counts = {"added": 0, "replaced": 0, "unchanged": 0, "plans": 0}
    with store.session() as s:
        fp = fingerprint_row(s, table.fingerprint)
        for op, entry in table.ops.items():
            shape = shape_row(s, op, entry.n, entry.k, table.dtype)
            link_model(s, table.model, shape)
            for b in entry.buckets:
                if b.arm == PLAN_ARM:
                    counts["plans"] += 1
                    continue
                study = study_row(s, fp, shape, b.m)
                values = dict(arm=b.arm, config=dict(b.config), median_us=b.median_us, unfused_us=b.baseline_us,
                              cublas_us=b.cublas_us, floor_us=b.floor_us, speedup=b.speedup,
                              speedup_vs_cublas=b.speedup_vs_cublas, confirmed_at=confirmed)
                compare = TABLE_WINNER_FIELDS + tuple(name for name in OPTIONAL_TIMES if getattr(b, name) is not None)
                counts[upsert_winner(s, study.id, values, compare=compare)] += 1
        key, device = fp.key, fp.device_name
    return ImportSummary(table.model, table.dtype, device, key, len(table.ops),
                         sum(len(e.buckets) for e in table.ops.values()) - counts["plans"], **counts,
                         streams=len(table.stream), folds=len(table.fold))


def check_runnable(table: DispatchTable) -> None:
    """TableError for an op this version does not know or a config that could never run: its keys
    must be the search space's, and the op's check must accept it at (m, N, K) in the table's dtype.
    The smem limit is the check's default (the largest of the GPUs tuned so far)."""
    from kernel_space import get_op  # the registry loads torch: only an import pays for it

    elem_bytes = 4 if table.dtype == "float32" else 2
    for op, entry in table.ops.items():
        try:
            spec = get_op(op)
        except ValueError as exc:
            raise TableError(f"ops.{op}", str(exc)) from None
        for i, b in enumerate(entry.buckets):
            path = f"ops.{op}.buckets[{i}].config"
            if b.arm == PLAN_ARM:  # decode attention's default plan: nothing to run-check
                continue
            if b.arm == "unfused":
                if b.config != UNFUSED_CONFIG:
                    raise TableError(path, f"an unfused bucket's config must be {UNFUSED_CONFIG}, got "
                                           f"{json.dumps(b.config)[:200]}")
                continue
            unknown = sorted(set(b.config) - set(spec.space.values))
            if unknown:
                raise TableError(f"{path}.{unknown[0][:64]}", "not a parameter of the search space")
            why = spec.check(b.config, b.m, entry.n, entry.k, elem_bytes)
            if why is not None:
                raise TableError(path, f"cannot run at {_where(op, b.m, entry)}: {why}")


def _where(op: str, m: int, entry) -> str:
    """A bucket for a message: m, N and K, or decode attention's batch, context and heads."""
    if op != ATTENTION_OP:
        return f"m={m}, N={entry.n}, K={entry.k}"
    heads, kv_heads, head_dim = decode_heads(entry.n, entry.k)
    batch, context = decode_m(m)
    return f"batch {batch}, context {context} ({heads} heads over {kv_heads} KV heads of {head_dim})"


def _parse_time(text: str) -> datetime:
    """The table's creation time (ISO 8601, 'Z' allowed); now if it does not parse."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return utcnow()
    return as_utc(when)
