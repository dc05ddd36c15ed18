"""The Store: one database of fingerprints, shapes, studies, trials and winners, plus Optuna's.

Every write runs in one session scope that commits or rolls back. Get-or-create is safe against a
concurrent writer: on SQLite the write transaction holds the lock from its first statement; on a
server database the unique constraint catches the loser, which then reads the winner's row.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy
from sqlalchemy import select
from sqlalchemy.orm import Session

from kernel_space.spec import Problem, config_key
from storage import migrate
from storage.engine import (
    BUSY_TIMEOUT_S,
    SQLITE_BEGIN,
    StorageError,
    _first_line,
    add_sqlite_hooks,
    display_url,
    engine_kwargs,
    init_lock,
    make_engine,
    resolve_url,
)
from storage.models import (
    STATUSES,
    TRIAL_ARMS,
    WINNER_ARMS,
    Fingerprint,
    ModelShape,
    Shape,
    Study,
    Trial,
    Winner,
    utcnow,
)
from storage.table import DTYPES


def study_name(fp_key: str, op: str, n: int, k: int, dtype: str, m: int) -> str:
    """The Optuna study name of (fingerprint, shape, M bucket): the same inputs give the same name,
    so a re-run resumes its study."""
    return f"ks-{fp_key}-{op}-n{n}-k{k}-{dtype}-m{m}"


@dataclass(frozen=True)
class StudyRef:
    """What the tuner needs to know about a study row."""

    id: int
    name: str
    fingerprint_key: str
    problem: Problem


def fingerprint_key(fp: dict) -> str:
    """A short stable id of a fingerprint (kernel_space.fingerprint.current_fingerprint): same machine,
    same software, same kernels -> same key."""
    return hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:12]


def capability_text(capability) -> str:
    """[9, 0] -> "9.0" (a string already in that form is kept)."""
    if isinstance(capability, str):
        return capability
    return ".".join(str(int(part)) for part in capability)


def dtype_name(dtype) -> str:
    """'bfloat16' or torch.bfloat16 -> 'bfloat16'; anything else is a ValueError."""
    name = dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return name


class Store:
    """The kernel-search database. `url`: any SQLAlchemy URL; None means $KERNEL_SEARCH_DB, else
    sqlite:///kernel_search.db in the working directory. Opening creates or migrates the schema;
    a URL that cannot be used raises StorageError. `readonly`: nothing is created, migrated or
    written (storage.engine), and a database that is not kernel-search's at head raises StorageError."""

    def __init__(self, url: str | None = None, readonly: bool = False):
        self.url = resolve_url(url)
        self.readonly = readonly
        self.engine = make_engine(self.url, readonly=readonly)
        # Writes on SQLite begin IMMEDIATE (see storage.engine._sqlite_begin); a no-op elsewhere.
        self._write_engine = self.engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
        self._optuna = None
        self._optuna_lock = threading.Lock()
        try:
            with self.engine.connect() as conn:
                at = migrate.current(conn)
                if readonly:
                    migrate.check_readable(conn, at, self.url)
            # The usual open finds the schema at head and needs no lock (nor a writable lock file).
            if not readonly and at != migrate.head():
                with init_lock(self.engine):
                    migrate.upgrade(self.engine)
        except StorageError:
            self.engine.dispose()
            raise
        except (sqlalchemy.exc.SQLAlchemyError, OSError) as exc:
            self.engine.dispose()
            raise StorageError(f"cannot open database {display_url(self.url)}: {_first_line(_cause(exc))}") from None

    def __repr__(self) -> str:
        return f"Store({display_url(self.url)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the connection pool (the database itself stays)."""
        self.engine.dispose()

    @contextlib.contextmanager
    def session(self, write: bool = True) -> Iterator[Session]:
        """One unit of work: commits when the block ends, rolls back if it raises. Read-only blocks
        may pass write=False so that on SQLite they do not wait for the write lock."""
        with Session(self._write_engine if write else self.engine, expire_on_commit=False) as session:
            with session.begin():
                yield session

    # ---- writes the tuner makes -------------------------------------------------------------

    def fingerprint_id(self, fp: dict) -> int:
        """The id of fingerprint `fp` (kernel_space.fingerprint.current_fingerprint()), inserted if new."""
        with self.session() as s:
            return fingerprint_row(s, fp).id

    def study(self, fp: dict, problem: Problem, model: str | None = None) -> StudyRef:
        """Get or create the study of (fingerprint, problem: op, N, K, dtype, M bucket); links `model`
        to the shape when given. Its Optuna study (same name) is the tuner's to create."""
        op, m, n, k, dtype = problem.op, problem.m, problem.n, problem.k, problem.dtype
        with self.session() as s:
            fp_row = fingerprint_row(s, fp)
            shape = shape_row(s, op, n, k, dtype)
            if model is not None:
                link_model(s, model, shape)
            row = study_row(s, fp_row, shape, m)
            return StudyRef(row.id, row.optuna_study_name, fp_row.key, problem)

    def trials(self, study_id: int) -> list[Trial]:
        """Every stored trial of a study, in the order they were stored."""
        with self.session(write=False) as s:
            return list(s.scalars(select(Trial).where(Trial.study_id == study_id).order_by(Trial.id)))

    def winner(self, study_id: int) -> Winner | None:
        """The confirmed winner of a study, if any."""
        with self.session(write=False) as s:
            return s.scalars(select(Winner).where(Winner.study_id == study_id)).first()

    def add_trial(self, study_id: int, *, trial_number: int | None, arm: str, config: dict, status: str,
                  reason: str | None = None, rel_error: float | None = None, compile_s: float | None = None,
                  median_us: float | None = None, p20_us: float | None = None,
                  p80_us: float | None = None) -> int:
        """Record one measurement; returns the trial row id."""

        _check_choice("arm", arm, TRIAL_ARMS)
        _check_choice("status", status, STATUSES)
        row = dict(study_id=study_id, trial_number=trial_number, arm=arm, config=dict(config),
                   config_key=config_key(config), status=status, reason=reason, rel_error=rel_error,
                   compile_s=compile_s, median_us=median_us, p20_us=p20_us, p80_us=p80_us, created_at=utcnow())
        # One INSERT, the study's existence left to its foreign key: a write that every worker sharing a
        # SQLite file queues for, after every config (the ORM's object, flush and look-up of the study
        # held the file's write lock 0.6-0.7 ms; see storage.optuna_rows).
        try:
            with self.session() as s:
                return s.execute(sqlalchemy.insert(Trial).values(**row)).inserted_primary_key[0]
        except sqlalchemy.exc.IntegrityError:
            with self.session(write=False) as s:
                _require(s, Study, study_id)
            raise

    def set_winner(self, study_id: int, *, arm: str, config: dict, median_us: float, unfused_us: float,
                   cublas_us: float | None, floor_us: float | None, speedup: float,
                   speedup_vs_cublas: float | None) -> None:
        """Insert or replace the confirmed winner of a study."""
        _check_choice("arm", arm, WINNER_ARMS)
        values = dict(arm=arm, config=dict(config), median_us=median_us, unfused_us=unfused_us,
                      cublas_us=cublas_us, floor_us=floor_us, speedup=speedup,
                      speedup_vs_cublas=speedup_vs_cublas, confirmed_at=utcnow())
        with self.session() as s:
            _require(s, Study, study_id)
            upsert_winner(s, study_id, values)

    def optuna_storage(self, heartbeat_interval: int | None = None, grace_period: int | None = None,
                       stale_trial_callback=None):
        """Optuna's RDBStorage on this database (created once per Store; its tables sit beside ours).
        The heartbeat settings apply to the first call's storage (the tuner's). A read-only store
        creates nothing: None when the database has no Optuna tables (one that only imported tables)."""
        import optuna

        with self._optuna_lock:
            if self._optuna is None and self.readonly:
                if not sqlalchemy.inspect(self.engine).has_table("studies"):
                    return None
                kwargs = engine_kwargs(self.engine.url, readonly=True)
                self._optuna = optuna.storages.RDBStorage(self.url, engine_kwargs=kwargs, skip_table_creation=True)
                if self.engine.dialect.name == "sqlite":
                    add_sqlite_hooks(self._optuna.engine, readonly=True)
                    self._optuna.engine.dispose()
            elif self._optuna is None:
                kwargs = {"connect_args": {"timeout": BUSY_TIMEOUT_S}} if self.engine.dialect.name == "sqlite" else {}
                # The engine's URL, not self.url: a plain postgresql:// has been mapped to psycopg 3,
                # which Optuna would otherwise open with SQLAlchemy 2.0's default driver (psycopg2).
                url = self.engine.url.render_as_string(hide_password=False)
                # Optuna's first open creates its tables and stamps its version: not safe to race.
                with init_lock(self.engine), warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
                    self._optuna = optuna.storages.RDBStorage(
                        url, engine_kwargs=kwargs, heartbeat_interval=heartbeat_interval,
                        grace_period=grace_period, heartbeat_stale_trial_callback=stale_trial_callback)
                _trials_read_by_core(self._optuna)
                if self.engine.dialect.name == "sqlite":
                    _serialize_sqlite(self._optuna.engine)
                    _reads_deferred(self._optuna)
            return self._optuna


ORM_TRIALS_ENV = "KERNEL_SEARCH_ORM_TRIALS"  # 1: Optuna's own ORM read, to measure against the Core read


def _trials_read_by_core(storage) -> None:
    """This storage object reads a study's trials for Optuna's cache (no state filter) with
    storage.optuna_rows.read_trials: the same FrozenTrials, without the ORM's objects.
    KERNEL_SEARCH_ORM_TRIALS=1 leaves Optuna's read in place (to measure one against the other)."""
    if os.environ.get(ORM_TRIALS_ENV) == "1":
        return
    from storage import optuna_rows

    orm_read = storage._get_trials

    def _get_trials(study_id, states, included_trial_ids, trial_id_greater_than):
        if states is not None:
            return orm_read(study_id, states, included_trial_ids, trial_id_greater_than)
        return optuna_rows.read_trials(storage.engine, study_id, included_trial_ids, trial_id_greater_than)

    storage._get_trials = _get_trials


def _serialize_sqlite(engine) -> None:
    """Give Optuna's own engine our SQLite settings, with every transaction IMMEDIATE. Optuna pops an
    enqueued trial with SELECT ... FOR UPDATE, which SQLite ignores: two tuners on one file then both
    took the same waiting trial and the second tell failed ("Cannot tell a COMPLETE trial"). Taking
    the write lock at BEGIN makes that read-then-update atomic across processes."""
    from sqlalchemy import event

    from storage.engine import _sqlite_begin, _sqlite_connect

    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    engine.update_execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
    engine.dispose()  # connections opened before the listeners existed are dropped


# RDBStorage's methods that only read. Each is one transaction of its own.
_OPTUNA_READS = ("get_study_id_from_name", "get_study_name_from_id", "get_study_directions", "get_study_user_attrs",
                 "get_study_system_attrs", "get_all_studies", "get_trial", "get_all_trials", "_get_trials",
                 "get_trial_id_from_study_id_trial_number", "get_trial_number_from_id", "get_trial_param",
                 "get_trial_params", "get_trial_user_attrs", "get_trial_system_attrs", "get_best_trial",
                 "get_n_trials", "_get_stale_trial_ids")


def _reads_deferred(storage) -> None:
    """Optuna's reads begin DEFERRED on SQLite (storage.engine.reading), its writes IMMEDIATE
    (_serialize_sqlite). A read holding the write lock kept every other tuner of the file from
    writing while it loaded a study's trials (milliseconds each, several a config); with four GPUs
    on one file the tuners spent as long waiting for the lock as measuring."""
    from storage.engine import reading

    def deferred(method):
        def read(*args, **kwargs):
            with reading():
                return method(*args, **kwargs)
        return read

    for name in _OPTUNA_READS:
        method = getattr(storage, name, None)
        if method is not None:
            setattr(storage, name, deferred(method))  # this storage object only


# ---- get-or-create of each natural key, inside a caller's session ---------------------------


def fingerprint_row(s: Session, fp: dict) -> Fingerprint:
    """The row of fingerprint dict `fp` (the format of kernel_space.fingerprint), inserted if new."""
    key = fingerprint_key(fp)
    try:
        values = dict(
            key=key, device_name=str(fp["device_name"]), capability=capability_text(fp["capability"]),
            sm_count=int(fp["sm_count"]), total_memory=int(fp["total_memory"]), driver=str(fp["driver"]),
            cuda=str(fp["cuda"]), torch=str(fp["torch"]), triton=str(fp["triton"]),
            kernel_hashes=dict(fp["kernel_hashes"]),
        )
    except KeyError as exc:
        raise ValueError(f"fingerprint lacks {exc.args[0]!r}") from None
    return get_or_create(s, Fingerprint, {"key": key}, values)


def shape_row(s: Session, op: str, n: int, k: int, dtype: str) -> Shape:
    if not isinstance(op, str) or not op:
        raise ValueError(f"op must be a non-empty string, got {op!r}")
    key = dict(op=op, n=n, k=k, dtype=dtype)
    return get_or_create(s, Shape, key, key)


def link_model(s: Session, model: str, shape: Shape) -> None:
    """Record that `model` runs `shape`; StorageError if it already runs another shape for that op."""
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a non-empty string, got {model!r}")
    key = dict(model=model, op=shape.op, dtype=shape.dtype)
    link = get_or_create(s, ModelShape, key, {**key, "shape_id": shape.id})
    if link.shape_id != shape.id:
        other = s.get(Shape, link.shape_id)
        raise StorageError(
            f"model {model!r} already has {shape.op} ({shape.dtype}) at N={other.n} K={other.k}, "
            f"not N={shape.n} K={shape.k}: a different model under the same name?"
        )


def study_row(s: Session, fp: Fingerprint, shape: Shape, m: int) -> Study:
    name = study_name(fp.key, shape.op, shape.n, shape.k, shape.dtype, m)
    key = dict(fingerprint_id=fp.id, shape_id=shape.id, m=m)
    return get_or_create(s, Study, key, {**key, "optuna_study_name": name})


def get_or_create(s: Session, model, key: dict, values: dict):
    """The row of `model` matching `key`, inserted from `values` if there is none. The insert runs
    in a savepoint so that losing a race to a concurrent writer only re-reads."""
    stmt = select(model).filter_by(**key)
    row = s.scalars(stmt).one_or_none()
    if row is not None:
        return row
    try:
        with s.begin_nested():
            row = model(**values)
            s.add(row)
    except sqlalchemy.exc.IntegrityError:
        row = s.scalars(stmt).one_or_none()
        if row is None:  # not a concurrent writer's row: the insert broke another rule, and says which
            raise
    return row


def upsert_winner(s: Session, study_id: int, values: dict, compare: tuple[str, ...] | None = None) -> str:
    """Insert or update the winner of a study; returns 'added', 'replaced' or 'unchanged'. With
    `compare`, a row already equal to `values` on those fields is left as it is."""
    stmt = select(Winner).filter_by(study_id=study_id)
    row = s.scalars(stmt).one_or_none()
    if row is None:
        try:
            with s.begin_nested():
                s.add(Winner(study_id=study_id, **values))
            return "added"
        except sqlalchemy.exc.IntegrityError:
            # Another writer added it since our read: on SQLite our IMMEDIATE transaction excludes
            # that, on PostgreSQL two tuners confirming one study both saw none (seen in the tests).
            # No row now means the insert broke another rule (a missing value): that error stands.
            row = s.scalars(stmt).one_or_none()
            if row is None:
                raise
    if compare is not None and all(getattr(row, name) == values[name] for name in compare):
        return "unchanged"
    for name, value in values.items():
        setattr(row, name, value)
    return "replaced"


def _require(s: Session, model, row_id: int) -> None:
    if s.get(model, row_id) is None:
        raise ValueError(f"no {model.__tablename__} row with id {row_id}")


def _check_choice(name: str, value, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _cause(exc: BaseException) -> BaseException:
    # SQLAlchemy wraps the driver's error; its text carries SQL and a docs link, the driver's does not.
    return getattr(exc, "orig", None) or exc
