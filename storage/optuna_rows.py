"""The tuner's few writes to Optuna's tables, as short SQL transactions of their own.

A tuning worker writes Optuna's tables several times for every config it asks for: the trial is made
(or an enqueued one popped), its parameters and attributes are stored, and it is told its value.
Optuna's RDBStorage does each through its ORM: it loads the trial row, checks it, builds objects and
flushes them, all inside the transaction. On SQLite that transaction holds the one write lock of the
file that every worker sharing it waits on: on the development machine a walk's parameters held it
2.5 ms, a tell 1.1 ms, an enqueued trial 2.1-2.8 ms (about 9 ms a config in all, 30% of a lone
worker's time), and two workers on one file spent 0.65 s of every 4.5 s waiting for it.

Here each of those writes is the same rows written with SQLAlchemy Core statements (Optuna's own
tables and columns, from its models), everything computable computed before the transaction starts,
and the checks Optuna makes kept as conditions of the statements: a trial that is no longer running
raises UpdateFinishedTrialError, a WAITING trial is popped by one worker only, a trial's number is
the count of its study's trials before it (the study row locked first on PostgreSQL, where SQLite's
IMMEDIATE transaction already serializes).

The rows are the ones Optuna writes: Optuna reads them back (its cache, samplers and heartbeat), and
tests/storage/test_optuna_rows.py compares them with Optuna's own writes column by column.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Sequence

import sqlalchemy
from optuna import distributions
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

from storage.engine import reading

TRIALS = models.TrialModel.__table__
PARAMS = models.TrialParamModel.__table__
VALUES = models.TrialValueModel.__table__
SYSTEM_ATTRS = models.TrialSystemAttributeModel.__table__
USER_ATTRS = models.TrialUserAttributeModel.__table__
HEARTBEATS = models.TrialHeartbeatModel.__table__
STUDIES = models.StudyModel.__table__


# Optuna 5's models store a trial's times as naive UTC and give them back as naive local time; before,
# naive local time both ways.
UTC_TIMES = hasattr(models.TrialModel, "_datetime_start_utc")


def stored_now() -> datetime.datetime:
    """Now, as Optuna's RDBStorage stores a trial's times (UTC_TIMES)."""
    if UTC_TIMES:
        return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return datetime.datetime.now()


def _check_running(conn, trial_id: int) -> None:
    state = conn.scalar(sqlalchemy.select(TRIALS.c.state).where(TRIALS.c.trial_id == trial_id))
    if state is None:
        raise KeyError(f"no trial with id {trial_id}")
    if state.is_finished():  # the column's Enum type gives a TrialState
        raise UpdateFinishedTrialError(f"trial {trial_id} is already finished")


def _attr_rows(trial_id: int, attrs: dict) -> list[dict]:
    """A trial's attribute rows (system or user), values as Optuna stores them (JSON)."""
    return [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)} for key, value in attrs.items()]


def _upsert(conn, table, rows: list[dict], keys: tuple[str, ...], update: tuple[str, ...] = ()) -> None:
    """INSERT rows; on a clash of `keys`, update the `update` columns (or leave the row as it is).
    SQLite's and PostgreSQL's ON CONFLICT; on another database, a row of the same keys is first
    deleted (update) or looked for (keep), inside the caller's transaction."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        for row in rows:
            same = sqlalchemy.and_(*(table.c[k] == row[k] for k in keys))
            if update:
                conn.execute(sqlalchemy.delete(table).where(same))
            elif conn.scalar(sqlalchemy.select(sqlalchemy.func.count()).select_from(table).where(same)):
                continue
            conn.execute(sqlalchemy.insert(table), [row])
        return
    stmt = insert(table)
    index = [table.c[k] for k in keys]
    if update:
        stmt = stmt.on_conflict_do_update(index_elements=index, set_={c: stmt.excluded[c] for c in update})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=index)
    conn.execute(stmt, rows)


def param_rows(trial_id: int, pending: Iterable[tuple], known: dict) -> list[dict]:
    """The trial_params rows of a walk: pending holds (name, internal value, distribution), checked
    against the distribution `known` has under that name (Optuna's check_distribution_compatibility);
    known then holds every name's."""
    rows = []
    for name, value, distribution in pending:
        previous = known.get(name)
        if previous is not None:
            distributions.check_distribution_compatibility(previous, distribution)
        known[name] = distribution
        rows.append({"trial_id": trial_id, "param_name": name, "param_value": value,
                     "distribution_json": distributions.distribution_to_json(distribution)})
    return rows


def stored_distributions(engine, study_id: int, names: Sequence[str]) -> dict:
    """The distribution each of `names` was first stored with in the study, for those stored at all:
    what Optuna checks a new parameter against. A read, outside any write transaction."""
    if not names:
        return {}
    stmt = (sqlalchemy.select(PARAMS.c.param_name, PARAMS.c.distribution_json)
            .join(TRIALS, TRIALS.c.trial_id == PARAMS.c.trial_id)
            .where(TRIALS.c.study_id == study_id, PARAMS.c.param_name.in_(list(names)))
            .order_by(PARAMS.c.param_id))
    found: dict = {}
    with reading(), engine.connect() as conn:
        for name, text in conn.execute(stmt):
            found.setdefault(name, distributions.json_to_distribution(text))
    return found


def write_walk(engine, trial_id: int, params: list[dict], system_attrs: dict, user_attrs: dict,
               heartbeat: bool) -> None:
    """One transaction: a running trial's parameter rows (param_rows), its system and user attributes
    (replacing any of the same key) and, with `heartbeat`, its first heartbeat (one it already has
    is kept). UpdateFinishedTrialError if the trial is finished."""
    system, user = _attr_rows(trial_id, system_attrs), _attr_rows(trial_id, user_attrs)
    with engine.begin() as conn:
        _check_running(conn, trial_id)
        if params:
            conn.execute(sqlalchemy.insert(PARAMS), params)
        _upsert(conn, SYSTEM_ATTRS, system, ("trial_id", "key"), ("value_json",))
        _upsert(conn, USER_ATTRS, user, ("trial_id", "key"), ("value_json",))
        if heartbeat:
            _upsert(conn, HEARTBEATS, [{"trial_id": trial_id}], ("trial_id",))


def finish(engine, trial_id: int, state: TrialState, values: Sequence[float] | None) -> None:
    """Optuna's set_trial_state_values for a running trial that ends (COMPLETE with its values, FAIL
    or PRUNED): one conditional UPDATE and the values' rows. UpdateFinishedTrialError if it is not
    running any more (another worker settled it)."""
    assert state.is_finished(), state
    rows = []
    for objective, value in enumerate(values or ()):
        stored, kind = models.TrialValueModel.value_to_stored_repr(value)
        rows.append({"trial_id": trial_id, "objective": objective, "value": stored, "value_type": kind})
    now = stored_now()
    with engine.begin() as conn:
        done = conn.execute(sqlalchemy.update(TRIALS)
                            .where(TRIALS.c.trial_id == trial_id, TRIALS.c.state == TrialState.RUNNING)
                            .values(state=state, datetime_complete=now))
        if done.rowcount != 1:
            raise UpdateFinishedTrialError(f"trial {trial_id} is not running")
        if rows:
            conn.execute(sqlalchemy.insert(VALUES), rows)


def create(engine, study_id: int, state: TrialState, system_attrs: dict | None = None) -> tuple[int, int]:
    """A new trial, RUNNING (asked: started now) or WAITING (enqueued), with system attributes; returns
    (trial id, number). The number is the count of the study's trials before it, as Optuna's."""
    assert state in (TrialState.RUNNING, TrialState.WAITING), state
    start = stored_now() if state == TrialState.RUNNING else None
    with engine.begin() as conn:
        if conn.dialect.name != "sqlite":  # SQLite's IMMEDIATE transaction has the file already
            conn.execute(sqlalchemy.select(STUDIES.c.study_id).where(STUDIES.c.study_id == study_id).with_for_update())
        number = conn.scalar(sqlalchemy.select(sqlalchemy.func.count()).select_from(TRIALS)
                             .where(TRIALS.c.study_id == study_id))
        made = conn.execute(sqlalchemy.insert(TRIALS).values(number=number, study_id=study_id, state=state,
                                                             datetime_start=start))
        trial_id = made.inserted_primary_key[0]
        attrs = _attr_rows(trial_id, system_attrs or {})
        if attrs:
            conn.execute(sqlalchemy.insert(SYSTEM_ATTRS), attrs)
    return trial_id, number


def pop(engine, trial_id: int) -> bool:
    """Optuna's WAITING -> RUNNING for an enqueued trial: True if this call took it; False if another
    worker did first. UpdateFinishedTrialError if it is finished."""
    with engine.begin() as conn:
        taken = conn.execute(sqlalchemy.update(TRIALS)
                             .where(TRIALS.c.trial_id == trial_id, TRIALS.c.state == TrialState.WAITING)
                             .values(state=TrialState.RUNNING, datetime_start=stored_now()))
        if taken.rowcount == 1:
            return True
        _check_running(conn, trial_id)
    return False


INTERMEDIATE = models.TrialIntermediateValueModel.__table__


def read_trials(engine, study_id: int, included_trial_ids: set[int], trial_id_greater_than: int) -> list:
    """RDBStorage._get_trials with no state filter (what Optuna's cache asks for on every read of a study:
    its unfinished trials and any newer one), the same FrozenTrials from the same six SELECTs, as Core
    statements: Optuna's ORM query loads each row as an object first, 16 ms of the 19 a read took on the
    development machine, read once a config asked."""
    included = {t for t in included_trial_ids if t <= trial_id_greater_than}
    where = TRIALS.c.study_id == study_id
    if included and trial_id_greater_than > -1:
        where &= sqlalchemy.or_(TRIALS.c.trial_id.in_(included), TRIALS.c.trial_id > trial_id_greater_than)
    elif trial_id_greater_than > -1:
        where &= TRIALS.c.trial_id > trial_id_greater_than
    with reading(), engine.connect() as conn:
        if conn.scalar(sqlalchemy.select(STUDIES.c.study_id).where(STUDIES.c.study_id == study_id)) is None:
            raise KeyError(f"No study with study_id {study_id} exists.")  # Optuna's find_or_raise_by_id
        rows = conn.execute(sqlalchemy.select(TRIALS.c.trial_id, TRIALS.c.number, TRIALS.c.state,
                                              TRIALS.c.datetime_start, TRIALS.c.datetime_complete)
                            .where(where).order_by(TRIALS.c.trial_id)).all()
        if not rows:
            return []
        ids = [r.trial_id for r in rows]
        params = conn.execute(sqlalchemy.select(PARAMS.c.trial_id, PARAMS.c.param_name, PARAMS.c.param_value,
                                                PARAMS.c.distribution_json)
                              .where(PARAMS.c.trial_id.in_(ids)).order_by(PARAMS.c.param_id)).all()
        values = conn.execute(sqlalchemy.select(VALUES.c.trial_id, VALUES.c.objective, VALUES.c.value,
                                                VALUES.c.value_type).where(VALUES.c.trial_id.in_(ids))).all()
        inter = conn.execute(sqlalchemy.select(INTERMEDIATE.c.trial_id, INTERMEDIATE.c.step,
                                               INTERMEDIATE.c.intermediate_value,
                                               INTERMEDIATE.c.intermediate_value_type)
                             .where(INTERMEDIATE.c.trial_id.in_(ids))).all()
        attrs = {table: conn.execute(sqlalchemy.select(table.c.trial_id, table.c.key, table.c.value_json)
                                     .where(table.c.trial_id.in_(ids))).all() for table in (USER_ATTRS, SYSTEM_ATTRS)}
    got = {field: {i: {} for i in ids} for field in ("params", "distributions", "values", "intermediate_values",
                                                     "user_attrs", "system_attrs")}
    for p in params:
        dist = distributions.json_to_distribution(p.distribution_json)
        got["distributions"][p.trial_id][p.param_name] = dist
        got["params"][p.trial_id][p.param_name] = dist.to_external_repr(p.param_value)
    for v in values:
        got["values"][v.trial_id][v.objective] = models.TrialValueModel.stored_repr_to_value(v.value, v.value_type)
    for v in inter:
        got["intermediate_values"][v.trial_id][v.step] = (
            models.TrialIntermediateValueModel.stored_repr_to_intermediate_value(v.intermediate_value,
                                                                                 v.intermediate_value_type))
    for table, field in ((USER_ATTRS, "user_attrs"), (SYSTEM_ATTRS, "system_attrs")):
        for a in attrs[table]:
            got[field][a.trial_id][a.key] = json.loads(a.value_json)
    trials = []
    for r in rows:
        i = r.trial_id
        vals = got["values"][i]  # objective -> value, listed in objective order as Optuna does
        trials.append(FrozenTrial(
            number=r.number, state=r.state, value=None, values=[vals[o] for o in range(len(vals))] if vals else None,
            datetime_start=_stored_time(r.datetime_start), datetime_complete=_stored_time(r.datetime_complete),
            params=got["params"][i], distributions=got["distributions"][i], user_attrs=got["user_attrs"][i],
            system_attrs=got["system_attrs"][i], intermediate_values=got["intermediate_values"][i], trial_id=i))
    return trials


def _stored_time(value: datetime.datetime | None) -> datetime.datetime | None:
    """A stored time as Optuna's model gives it back (UTC_TIMES)."""
    if value is None or not UTC_TIMES:
        return value
    return value.replace(tzinfo=datetime.timezone.utc).astimezone().replace(tzinfo=None)
