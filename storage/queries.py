"""Read-only views of the database as pandas DataFrames: what the CLI and the dashboards show.

Filters shared by every frame (all optional, combined with AND):
    gpu       a fingerprint key, a prefix of one, or part of the device name ("H100"), any case
    model     a model name linked to the shape (ks_model_shapes)
    op        an op name
    dtype     a dtype name
    m_min, m_max   the M bucket, inclusive (decode attention's: its batch)
Frames have their columns even when empty, so callers can print or concatenate them blindly.

Decode attention's rows are shown by what their keys mean (kernel_space.attention_shape): `m` is
its batch and `context` the cache slots (None on a linear op's row); n and k stay its stored keys.
"""

from __future__ import annotations

import re
import warnings
from collections import defaultdict

import pandas as pd
from sqlalchemy import Select, and_, case, exists, func, or_, select

from kernel_space.attention_shape import ATTENTION_OP, STRIDE, decode_m
from storage.engine import StorageError
from storage.export import build_table
from storage.models import Fingerprint, ModelShape, Shape, StepRun, Study, Trial, Winner
from storage.steps import ROW_ARMS, runs, table_hash
from storage.store import Store

STUDY_COLUMNS = ["gpu", "fingerprint", "models", "op", "n", "k", "dtype", "m", "context"]
WINNER_COLUMNS = STUDY_COLUMNS + ["arm", "config", "median_us", "unfused_us", "cublas_us", "floor_us",
                                  "speedup", "speedup_vs_cublas", "confirmed_at"]
TRIAL_COLUMNS = ["trial_id", "study_id", *STUDY_COLUMNS, "trial_number", "arm", "config", "config_key", "status",
                 "reason", "rel_error", "compile_s", "median_us", "p20_us", "p80_us", "created_at"]
STUDIES_COLUMNS = ["study_id", "name", *STUDY_COLUMNS, "trials", "ok", "failed", "incorrect", "best_us",
                   "winner_arm", "speedup", "created_at"]
FAILURE_COLUMNS = ["status", "reason", "count", "studies", "ops", "example"]


def _study_select(*columns) -> Select:
    """SELECT columns FROM studies JOIN shapes JOIN fingerprints."""
    return (
        select(*columns)
        .select_from(Study)
        .join(Shape, Study.shape_id == Shape.id)
        .join(Fingerprint, Study.fingerprint_id == Fingerprint.id)
    )


def _study_columns():
    return (Fingerprint.device_name.label("gpu"), Fingerprint.key.label("fingerprint"), Study.shape_id,
            Shape.op, Shape.n, Shape.k, Shape.dtype, Study.m)


def _filter(stmt: Select, gpu=None, model=None, op=None, dtype=None, m_min=None, m_max=None) -> Select:
    if gpu:
        # Bound parameters with LIKE wildcards escaped: input never becomes SQL.
        stmt = stmt.where(or_(
            Fingerprint.key.startswith(gpu.lower(), autoescape=True),
            func.lower(Fingerprint.device_name).contains(gpu.lower(), autoescape=True),
        ))
    if model:
        stmt = stmt.where(exists().where(ModelShape.shape_id == Study.shape_id, ModelShape.model == model))
    if op:
        stmt = stmt.where(Shape.op == op)
    if dtype:
        stmt = stmt.where(Shape.dtype == dtype)
    # Decode attention's M is the batch: the low part of its key (context * STRIDE + batch).
    m = case((Shape.op == ATTENTION_OP, Study.m % STRIDE), else_=Study.m)
    if m_min is not None:
        stmt = stmt.where(m >= m_min)
    if m_max is not None:
        stmt = stmt.where(m <= m_max)
    return stmt


def _models_by_shape(session, shape_ids) -> dict[int, str]:
    """shape id -> the models using it, comma-joined and sorted."""
    names = defaultdict(list)
    if shape_ids:
        rows = session.execute(select(ModelShape.shape_id, ModelShape.model)
                               .where(ModelShape.shape_id.in_(set(shape_ids))).order_by(ModelShape.model))
        for shape_id, model in rows:
            names[shape_id].append(model)
    return {shape_id: ",".join(models) for shape_id, models in names.items()}


def _frame(session, stmt: Select, columns: list[str]) -> pd.DataFrame:
    rows = [row._asdict() for row in session.execute(stmt)]
    models = _models_by_shape(session, [row["shape_id"] for row in rows])
    for row in rows:
        row["models"] = models.get(row.pop("shape_id"), "")
        _read_attention_key(row)
    frame = pd.DataFrame(rows, columns=columns)
    frame["context"] = frame["context"].astype("Int64")  # ints, and <NA> on linear ops' rows (not 4096.0)
    return frame


def _read_attention_key(row: dict) -> None:
    """A decode attention row's m key as its batch (m) and context; other rows get context None."""
    row["context"] = None
    if row.get("op") == ATTENTION_OP:
        row["m"], row["context"] = decode_m(row["m"])


def known_models(store: Store) -> list[str]:
    """Every model name linked to a shape, sorted."""
    with store.session(write=False) as s:
        return list(s.scalars(select(ModelShape.model).distinct().order_by(ModelShape.model)))


def known_ops(store: Store) -> list[str]:
    """Every op with a shape in the database, sorted."""
    with store.session(write=False) as s:
        return list(s.scalars(select(Shape.op).distinct().order_by(Shape.op)))


def known_gpus(store: Store, gpu: str | None = None) -> list[tuple[str, str]]:
    """(device name, fingerprint key) of every fingerprint, or of those the `gpu` filter matches."""
    stmt = _filter(select(Fingerprint.device_name, Fingerprint.key), gpu=gpu).order_by(Fingerprint.device_name,
                                                                                         Fingerprint.key)
    with store.session(write=False) as s:
        return [tuple(row) for row in s.execute(stmt)]


# GPU, then shapes in the order they were first tuned (a model's ops in layer order), then M.
_ORDER = (Fingerprint.device_name, Fingerprint.key, Shape.id, Study.m)


def winners_frame(store: Store, gpu: str | None = None, model: str | None = None, op: str | None = None,
                  m_min: int | None = None, m_max: int | None = None, min_speedup: float | None = None,
                  beats_cublas: bool = False, dtype: str | None = None) -> pd.DataFrame:
    """One row per winner: where it ran, the shape and bucket, the chosen arm and config, its time,
    the baselines' times and the speedups. min_speedup keeps speedup (vs unfused) >= the value;
    beats_cublas keeps fused winners faster than the cuBLAS GEMM alone."""
    stmt = _study_select(*_study_columns(), Winner.arm, Winner.config, Winner.median_us, Winner.unfused_us,
                         Winner.cublas_us, Winner.floor_us, Winner.speedup, Winner.speedup_vs_cublas,
                         Winner.confirmed_at).join(Winner, Winner.study_id == Study.id)
    stmt = _filter(stmt, gpu, model, op, dtype, m_min, m_max).order_by(*_ORDER)
    if min_speedup is not None:
        stmt = stmt.where(Winner.speedup >= min_speedup)
    if beats_cublas:
        stmt = stmt.where(Winner.arm == "fused", Winner.speedup_vs_cublas > 1.0)
    with store.session(write=False) as s:
        return _frame(s, stmt, WINNER_COLUMNS)


def trials_frame(store: Store, gpu: str | None = None, model: str | None = None, op: str | None = None,
                 m_min: int | None = None, m_max: int | None = None, dtype: str | None = None,
                 study_id: int | None = None, status: str | None = None, arm: str | None = None) -> pd.DataFrame:
    """One row per trial with its study's shape and GPU, oldest first within a study."""
    stmt = _study_select(Trial.id.label("trial_id"), Trial.study_id, *_study_columns(), Trial.trial_number,
                         Trial.arm, Trial.config, Trial.config_key, Trial.status, Trial.reason, Trial.rel_error,
                         Trial.compile_s, Trial.median_us, Trial.p20_us, Trial.p80_us,
                         Trial.created_at).join(Trial, Trial.study_id == Study.id)
    stmt = _filter(stmt, gpu, model, op, dtype, m_min, m_max).order_by(*_ORDER, Trial.id)
    if study_id is not None:
        stmt = stmt.where(Trial.study_id == study_id)
    if status is not None:
        stmt = stmt.where(Trial.status == status)
    if arm is not None:
        stmt = stmt.where(Trial.arm == arm)
    with store.session(write=False) as s:
        return _frame(s, stmt, TRIAL_COLUMNS)


def studies_frame(store: Store, gpu: str | None = None, model: str | None = None, op: str | None = None,
                  m_min: int | None = None, m_max: int | None = None, dtype: str | None = None) -> pd.DataFrame:
    """One row per study: trial counts by status, the best median of an ok fused or unfused trial
    (cuBLAS alone is a bound, not a candidate), and the winner's arm and speedup if confirmed."""
    counts = (
        select(
            Trial.study_id,
            func.count(Trial.id).label("trials"),
            *(func.sum(case((Trial.status == name, 1), else_=0)).label(name) for name in ("ok", "failed", "incorrect")),
            func.min(case((and_(Trial.status == "ok", Trial.arm != "cublas"), Trial.median_us))).label("best_us"),
        )
        .group_by(Trial.study_id)
        .subquery()
    )
    stmt = (
        _study_select(Study.id.label("study_id"), Study.optuna_study_name.label("name"), *_study_columns(),
                      func.coalesce(counts.c.trials, 0).label("trials"),
                      *(func.coalesce(counts.c[name], 0).label(name) for name in ("ok", "failed", "incorrect")),
                      counts.c.best_us, Winner.arm.label("winner_arm"), Winner.speedup, Study.created_at)
        .outerjoin(counts, counts.c.study_id == Study.id)
        .outerjoin(Winner, Winner.study_id == Study.id)
    )
    stmt = _filter(stmt, gpu, model, op, dtype, m_min, m_max).order_by(*_ORDER)
    with store.session(write=False) as s:
        return _frame(s, stmt, STUDIES_COLUMNS)


_NUMBER = re.compile(r"(?<![A-Za-z0-9_.])[-+]?\d+(\.\d+)?([eE][-+]?\d+)?")


def reason_pattern(reason: str | None) -> str:
    """A reason with its numbers replaced by '#', so that 'smem 245760 B > 232448 B' and
    'smem 196608 B > 232448 B' count as one kind of failure. Names like BLOCK_M16 keep digits."""
    return _NUMBER.sub("#", reason or "(no reason)")


def failures_frame(store: Store, gpu: str | None = None, model: str | None = None, op: str | None = None,
                   m_min: int | None = None, m_max: int | None = None, dtype: str | None = None) -> pd.DataFrame:
    """Failed and incorrect trials grouped by status and reason pattern (see reason_pattern), most
    frequent first, with how many studies hit each, the ops, and one verbatim example."""
    stmt = _study_select(Trial.status, Trial.reason, Trial.study_id, Shape.op).join(Trial, Trial.study_id == Study.id)
    stmt = _filter(stmt, gpu, model, op, dtype, m_min, m_max).where(Trial.status != "ok").order_by(Trial.id)
    with store.session(write=False) as s:
        rows = pd.DataFrame(s.execute(stmt).all(), columns=["status", "reason", "study_id", "op"])
    if rows.empty:
        return pd.DataFrame(columns=FAILURE_COLUMNS)
    rows["pattern"] = rows["reason"].map(reason_pattern)
    grouped = rows.groupby(["status", "pattern"], sort=False).agg(
        count=("study_id", "size"),
        studies=("study_id", "nunique"),
        ops=("op", lambda ops: ",".join(sorted(set(ops)))),
        example=("reason", "first"),
    ).reset_index().rename(columns={"pattern": "reason"})
    grouped = grouped.sort_values(["count", "status", "reason"], ascending=[False, True, True], kind="stable")
    return grouped[FAILURE_COLUMNS].reset_index(drop=True)


# The note of a study with no search behind it: its winner came from an imported table.
NO_STUDY = "no Optuna study of this name"
IMPORTANCE_COLUMNS = ["study_id", "name", *STUDY_COLUMNS, "complete", "param", "importance", "note"]


def importances_frame(store: Store, gpu: str | None = None, model: str | None = None, op: str | None = None,
                      m_min: int | None = None, m_max: int | None = None, dtype: str | None = None,
                      min_complete: int = 4) -> pd.DataFrame:
    """Optuna's parameter importances of every study (by its optuna_study_name, read from this
    database through store.optuna_storage()): one row per (study, param), most important first. A
    study that cannot be evaluated (fewer than `min_complete` completed trials, no Optuna study, a
    single config) gives one row with param None and the reason in `note`.

    The evaluator is PED-ANOVA: Optuna's default fANOVA needs scikit-learn, which is not a
    dependency; PED-ANOVA also copes with the define-by-run space's conditional params."""
    import optuna

    studies = studies_frame(store, gpu=gpu, model=model, op=op, m_min=m_min, m_max=m_max, dtype=dtype)
    rows = []
    if studies.empty:
        return pd.DataFrame(columns=IMPORTANCE_COLUMNS)
    storage = store.optuna_storage()  # None: a read-only store on a database without Optuna's tables
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        for study in studies.to_dict("records"):
            base = {column: study[column] for column in ("study_id", "name", *STUDY_COLUMNS)}
            for param, importance, complete, note in _importances(optuna, storage, study["name"], min_complete):
                rows.append({**base, "complete": complete, "param": param, "importance": importance, "note": note})
    finally:
        optuna.logging.set_verbosity(verbosity)
    frame = pd.DataFrame(rows, columns=IMPORTANCE_COLUMNS)
    frame["context"] = frame["context"].astype("Int64")
    return frame


def _importances(optuna, storage, name: str, min_complete: int):
    """(param, importance, completed trials, note) of one Optuna study."""
    if storage is None:
        return [(None, None, 0, NO_STUDY)]
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return [(None, None, 0, NO_STUDY)]
    complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    if complete < min_complete:
        return [(None, None, complete, f"too few completed trials ({complete} < {min_complete})")]
    try:
        with warnings.catch_warnings():  # "some regimes have less than 2 trials": small studies, known
            warnings.simplefilter("ignore", UserWarning)
            found = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # e.g. every trial the same value
        return [(None, None, complete, f"importances not computable: {exc}")]
    if not found:
        return [(None, None, complete, "no parameter varied")]
    return [(param, float(value), complete, None) for param, value in found.items()]


STEP_COLUMNS = ["gpu", "fingerprint", "model", "dtype", "run_id", "table_hash", "current", "previous_hash", "context",
                "output_len", "created_at", "batch", "ships", "stream", "fold", "speedup", "vs_previous",
                *(f"{arm}_{what}" for what in ("tok_s", "step_ms", "prefill_ms") for arm in ROW_ARMS)]


def steps_frame(store: Store, gpu: str | None = None, model: str | None = None, dtype: str | None = None,
                batch_min: int | None = None, batch_max: int | None = None, run_id: int | None = None,
                latest: bool = True) -> pd.DataFrame:
    """End-to-end step checks (storage.steps): one row per (run, batch) with each arm's tok/s, step
    and prefill ms, the new table's speedup over unfused and over the previous table, and the arm that
    ships there. latest: only the newest run of each (GPU, model, dtype, table). current: the run's
    table is the one the winners give now (so export applies its verdicts). Newest runs first."""
    stmt = _filter(select(StepRun.id, Fingerprint.device_name, Fingerprint.key, StepRun.model, StepRun.dtype,
                          StepRun.table_hash).join(Fingerprint, StepRun.fingerprint_id == Fingerprint.id), gpu=gpu)
    if model:
        stmt = stmt.where(StepRun.model == model)
    if dtype:
        stmt = stmt.where(StepRun.dtype == dtype)
    if run_id is not None:
        stmt = stmt.where(StepRun.id == run_id)
    with store.session(write=False) as s:
        found = s.execute(stmt.order_by(StepRun.id.desc())).all()
    chosen, seen = [], set()
    for row in found:
        key = (row.key, row.model, row.dtype, row.table_hash)
        if not latest or key not in seen:
            seen.add(key)
            chosen.append(row)
    current = {}
    for row in chosen:
        group = (row.key, row.model, row.dtype)
        if group not in current:
            table = _winners_table(store, *group)
            current[group] = table_hash(table) if table is not None else None
    names = {row.id: row.device_name for row in chosen}
    records = [
        _step_record(names[run.id], run, v, current[(run.fingerprint_key, run.model, run.dtype)] == run.table_hash)
        for run in runs(store, [row.id for row in chosen]) for v in run.verdicts
        if (batch_min is None or v.batch >= batch_min) and (batch_max is None or v.batch <= batch_max)
    ]
    return pd.DataFrame(records, columns=STEP_COLUMNS)


def _winners_table(store: Store, fp_key: str, model: str, dtype: str):
    try:
        return build_table(store, model, fp_key, dtype)
    except StorageError:
        return None


def _step_record(gpu: str, run, verdict, current: bool) -> dict:
    rows = {row.arm: row for row in run.rows if row.batch == verdict.batch}
    record = {"gpu": gpu, "fingerprint": run.fingerprint_key, "model": run.model, "dtype": run.dtype,
              "run_id": run.id, "table_hash": run.table_hash, "current": current,
              "previous_hash": run.previous_hash, "context": run.context, "output_len": run.output_len,
              "created_at": run.created_at, "batch": verdict.batch, "ships": verdict.ships,
              "stream": verdict.stream, "fold": verdict.fold, "speedup": verdict.speedup,
              "vs_previous": verdict.vs_previous}
    for arm in ROW_ARMS:
        row = rows.get(arm)
        record[f"{arm}_tok_s"] = row.tok_s if row else None
        record[f"{arm}_step_ms"] = row.step_ms if row else None
        record[f"{arm}_prefill_ms"] = row.prefill_ms if row else None
    return record
