"""The Store: URL resolution, SQLite settings, migrations, round trips and unique keys, on SQLite and
PostgreSQL alike (tests/storage/conftest.py) except where a test names its kind."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time

import optuna
import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select

from kernel_space.spec import Problem, config_key
from storage import Base, Fingerprint, Shape, StorageError, Store, Study, StudyRef, Trial, Winner, migrate, study_name
from storage.engine import driver_url
from storage.store import fingerprint_key
from tests.storage.fill import FUSED, H100, H200, UNFUSED

KS_TABLES = {"ks_fingerprints", "ks_shapes", "ks_model_shapes", "ks_studies", "ks_trials", "ks_winners", "ks_queue",
             "ks_config_claims", "ks_step_runs", "ks_step_benches", "ks_step_attention"}
# A test that checks what only SQLite has (PRAGMAs, the lock file, a file that is not a database).
sqlite_only = pytest.mark.parametrize("db_backend", ["sqlite"])


def tables(store: Store) -> set[str]:
    return set(sqlalchemy.inspect(store.engine).get_table_names())


def test_url_argument_then_env_then_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KERNEL_SEARCH_DB", raising=False)
    with Store() as s:
        assert s.url == "sqlite:///kernel_search.db"
    assert (tmp_path / "kernel_search.db").exists()
    monkeypatch.setenv("KERNEL_SEARCH_DB", f"sqlite:///{tmp_path / 'env.db'}")
    with Store():
        pass
    with Store(f"sqlite:///{tmp_path / 'arg.db'}"):
        pass
    assert {"env.db", "arg.db"} <= {p.name for p in tmp_path.iterdir()}


@sqlite_only
def test_sqlite_wal_busy_timeout_and_foreign_keys(store):
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 30_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL: no fsync a commit
    with store.optuna_storage().engine.connect() as conn:  # Optuna's engine gets the same settings
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1


@sqlite_only
def test_optunas_reads_do_not_wait_for_the_write_lock_and_its_writes_do(store, tmp_path):
    """Another process holding the file's write lock (a tuner mid-write) delays Optuna's writes on
    this store, never its reads: reads begin DEFERRED, writes IMMEDIATE."""
    storage = store.optuna_storage()
    study = optuna.create_study(storage=storage)
    study.tell(study.ask(), 1.0)
    study_id = study._study_id
    other = sqlite3.connect(store.engine.url.database, isolation_level=None, timeout=0.1, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    try:
        t0 = time.monotonic()
        assert len(storage.get_all_trials(study_id)) == 1
        assert storage.get_study_id_from_name(study.study_name) == study_id
        assert time.monotonic() - t0 < 5  # a read under the write lock would wait up to the busy timeout
        other.execute("COMMIT")
        other.execute("BEGIN IMMEDIATE")  # the lock again, released by a thread in 0.5 s
        timer = threading.Timer(0.5, lambda: other.execute("COMMIT"))
        timer.start()
        t0 = time.monotonic()
        storage.create_new_trial(study_id)  # waits for the lock, then writes
        assert time.monotonic() - t0 >= 0.4
        timer.join()
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()
    assert len(storage.get_all_trials(study_id)) == 2


@sqlite_only
@pytest.mark.parametrize("poll_for_s", [5.0, 0.05])
def test_a_write_waits_for_the_lock_in_its_own_short_sleeps_then_in_sqlites(store, monkeypatch, poll_for_s):
    """A write transaction begins as soon as the lock another process holds comes free: within the
    polled wait (poll_for_s past the hold), or after it in SQLite's busy wait (poll_for_s short); the
    connection keeps its busy timeout either way."""
    from storage import engine

    monkeypatch.setattr(engine, "LOCK_POLL_FOR_S", poll_for_s)
    other = sqlite3.connect(store.engine.url.database, isolation_level=None, timeout=0.1, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    timer = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    try:
        timer.start()
        t0 = time.monotonic()
        with store.session() as s:  # a write: BEGIN IMMEDIATE
            s.add(Fingerprint(key="waited", device_name="x", capability="9.0", sm_count=1, total_memory=1,
                              driver="", cuda="", torch="", triton="", kernel_hashes={}))
        assert 0.25 <= time.monotonic() - t0 < 5
        timer.join()
    finally:
        timer.cancel()
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 30_000
    with store.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Fingerprint).where(Fingerprint.key == "waited")) == 1


def test_the_polled_wait_gives_way_to_sqlites_on_other_errors_and_when_asked(monkeypatch):
    from storage import engine

    class Raw:
        def __init__(self, error):
            self.error, self.sql = error, []

        def execute(self, sql):
            self.sql.append(sql)
            if sql.startswith("BEGIN"):
                raise sqlite3.OperationalError(self.error)

    raw = Raw("disk I/O error")
    assert engine._begin_writing(raw, "IMMEDIATE") is False  # not a lock: SQLite's BEGIN will say what it is
    assert raw.sql[0] == "PRAGMA busy_timeout = 0" and raw.sql[-1].startswith("PRAGMA busy_timeout = 30")
    monkeypatch.setenv("KERNEL_SEARCH_SQLITE_WAIT", "busy")
    raw = Raw("database is locked")
    assert engine._begin_writing(raw, "IMMEDIATE") is False and raw.sql == []


def test_migrations_applied_at_head(store):
    with store.engine.connect() as conn:
        assert migrate.current(conn) == migrate.head() == "0007"
        assert conn.exec_driver_sql("SELECT version_num FROM ks_alembic_version").fetchall() == [("0007",)]
    assert KS_TABLES | {"ks_alembic_version"} <= tables(store)


def test_head_is_the_newest_migration():
    """migrate.HEAD (what an open compares with, without Alembic) is Alembic's own head of
    migrations/versions: a new revision that forgets it fails here."""
    assert migrate.head() == migrate.HEAD == migrate.script_head()


def test_an_open_at_head_imports_no_alembic(tmp_path):
    """Opening a database already at head reads its revision with one SELECT: Alembic (with mako and
    pygments, 0.3-0.4 s) is imported only to migrate."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'k.db'}"
    Store(url).close()  # created and migrated here
    code = (f"import sys; from storage import Store; s = Store({url!r}); print(s.url != ''); s.close(); "
            "print('alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_a_version_table_of_two_rows_is_refused_as_alembic_would(store):
    """current() reads the one row this code writes; two rows (two heads: not a database this code
    made) go to Alembic, which refuses them as before."""
    from alembic.util import CommandError

    with store.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO ks_alembic_version (version_num) VALUES ('0005')")
    with store.engine.connect() as conn, pytest.raises(CommandError, match="more than one head"):
        migrate.current(conn)


def test_models_match_the_migrations(store):
    # An ORM change without a migration (or the reverse) shows up as a difference here.
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": migrate.VERSION_TABLE})
        diff = [d for d in compare_metadata(ctx, Base.metadata) if "ks_" in repr(d)]
    assert diff == []


def test_the_lock_file_is_only_needed_to_create_the_schema(tmp_path):
    # A directory where the lock file belongs makes taking the lock fail.
    (tmp_path / "fresh.db.lock").mkdir()
    with pytest.raises(StorageError, match="cannot open database"):
        Store(f"sqlite:///{tmp_path / 'fresh.db'}")
    Store(f"sqlite:///{tmp_path / 'done.db'}").close()
    (tmp_path / "done.db.lock").unlink()
    (tmp_path / "done.db.lock").mkdir()
    with Store(f"sqlite:///{tmp_path / 'done.db'}") as s:
        assert s.study(H100, Problem("rmsnorm_qkv", 1, 4096, 1024, "bfloat16")).id == 1


def test_optuna_shares_the_database_and_reopening_keeps_both(new_db_url):
    url = new_db_url()
    with Store(url) as s:
        ref = s.study(H100, Problem("rmsnorm_qkv", 1, 4096, 1024, "bfloat16"))
        storage = s.optuna_storage()
        assert isinstance(storage, optuna.storages.RDBStorage) and s.optuna_storage() is storage
        study = optuna.create_study(study_name=ref.name, storage=storage)
        study.enqueue_trial({"BLOCK_N": 64})
        # Optuna's `alembic_version` and ours live side by side; a second open migrates nothing.
        assert {"studies", "trials", "alembic_version", "ks_alembic_version"} <= tables(s)
    with Store(url) as s:
        assert s.study(H100, Problem("rmsnorm_qkv", 1, 4096, 1024, "bfloat16")) == ref
        names = [x.study_name for x in optuna.get_all_study_summaries(s.optuna_storage())]
        assert names == [ref.name]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("not a url", "bad database URL"),
        ("nosuchdb://host/x", "unknown database kind"),
        ("postgresql+psycopg2://user:secret@127.0.0.1:1/ks", "postgresql"),
        ("postgresql+pg8000://user:secret@127.0.0.1:1/ks", 'pip install -e ".[postgres]"'),
        ("sqlite:////nonexistent-dir/sub/x.db", "cannot open database"),
    ],
)
def test_bad_url_is_one_line_storage_error(url, words):
    with pytest.raises(StorageError) as info:
        Store(url)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert words in message and "\n" not in message and "secret" not in message


@pytest.mark.postgres
def test_plain_postgresql_url_means_psycopg_3(postgres_server):
    assert driver_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert driver_url("postgresql+psycopg2://u@h/db").drivername == "postgresql+psycopg2"  # an explicit choice stays
    assert driver_url("sqlite:///x.db").drivername == "sqlite"
    url = postgres_server.create_database("ks_plain_url")
    try:
        assert url.startswith("postgresql://")
        with Store(url) as s:
            assert s.engine.dialect.driver == s.optuna_storage().engine.dialect.driver == "psycopg"
    finally:
        postgres_server.drop_database("ks_plain_url")
    # A server that is not there: the driver loads, the connection fails, in one line.
    with pytest.raises(StorageError, match="cannot open database postgresql://user:\\*\\*\\*@127.0.0.1:1/ks: "):
        Store("postgresql://user:secret@127.0.0.1:1/ks")


@pytest.mark.postgres
def test_a_missing_postgresql_database_is_one_line(postgres_server):
    # The README tells users to create the database first; this is what they see if they did not.
    with pytest.raises(StorageError) as info:
        Store(postgres_server.url("ks_never_created"))
    message = str(info.value)
    assert message.startswith("cannot open database postgresql://postgres@127.0.0.1:")
    assert 'database "ks_never_created" does not exist' in message and "\n" not in message


def test_plain_postgresql_url_without_a_driver_names_the_extra(monkeypatch):
    import importlib.util
    import sys

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a))
    # SQLAlchemy's own default for postgresql:// (psycopg2 in 2.0, psycopg in 2.1), absent too.
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(StorageError) as info:
        Store("postgresql://user@127.0.0.1:1/ks")
    message = str(info.value)
    assert message.startswith("database URL postgresql://user@127.0.0.1:1/ks needs a driver that is not installed")
    assert message.endswith('(pip install -e ".[postgres]" installs psycopg)') and "\n" not in message


def test_a_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not SQLite\n" * 100)
    with pytest.raises(StorageError, match="cannot open database"):
        Store(f"sqlite:///{path}")


def test_schema_newer_than_the_code_is_refused(new_db_url):
    url = new_db_url()
    with Store(url) as s, s.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE ks_alembic_version SET version_num = '9999'")
    with pytest.raises(StorageError, match="newer than this version"):
        Store(url)


def test_fingerprint_upsert_and_columns(store):
    first = store.fingerprint_id(H100)
    assert store.fingerprint_id(dict(H100)) == first
    assert store.fingerprint_id(H200) != first
    with store.session(write=False) as s:
        row = s.get(Fingerprint, first)
        assert (row.device_name, row.capability, row.sm_count, row.total_memory) == (
            "NVIDIA H100 80GB HBM3", "9.0", 132, 85520809984)
        assert row.kernel_hashes == H100["kernel_hashes"] and len(row.key) == 12
        assert s.scalar(select(func.count()).select_from(Fingerprint)) == 2


def test_study_get_or_create_and_model_links(store):
    ref = store.study(H100, Problem("rmsnorm_qkv", 8, 4096, 1024, "bfloat16"), model="qwen3-0.6b")
    assert isinstance(ref, StudyRef)
    assert ref.name == study_name(ref.fingerprint_key, "rmsnorm_qkv", 4096, 1024, "bfloat16", 8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.name = "other"
    # The same shape from another model (or from no model) is the same study.
    assert store.study(H100, Problem("rmsnorm_qkv", 8, 4096, 1024, "bfloat16"), model="qwen3-0.6b-ft") == ref
    assert store.study(H100, Problem("rmsnorm_qkv", 8, 4096, 1024, "bfloat16")) == ref
    other_m = store.study(H100, Problem("rmsnorm_qkv", 16, 4096, 1024, "bfloat16"), model="qwen3-0.6b")
    other_gpu = store.study(H200, Problem("rmsnorm_qkv", 8, 4096, 1024, "bfloat16"), model="qwen3-0.6b")
    assert len({ref.id, other_m.id, other_gpu.id}) == 3
    assert len({ref.name, other_m.name, other_gpu.name}) == 3
    with store.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Shape)) == 1


def test_study_refuses_a_second_shape_for_a_models_op(store):
    store.study(H100, Problem("rmsnorm_qkv", 1, 4096, 1024, "bfloat16"), model="qwen3-0.6b")
    with pytest.raises(StorageError, match="already has rmsnorm_qkv"):
        store.study(H100, Problem("rmsnorm_qkv", 1, 6144, 4096, "bfloat16"), model="qwen3-0.6b")
    # The failed call rolled back whole: its new shape is not there either.
    with store.session(write=False) as s:
        assert s.scalars(select(Shape.n)).all() == [4096]
    # Another dtype of the same op is a separate link.
    store.study(H100, Problem("rmsnorm_qkv", 1, 4096, 1024, "float16"), model="qwen3-0.6b")


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(dtype="int8"), "dtype"), (dict(m=0), "m must be"), (dict(n=-1), "n must be"), (dict(k=2.5), "k must be"),
])
def test_problem_argument_errors(kwargs, match):
    args = dict(op="rmsnorm_qkv", n=4096, k=1024, dtype="bfloat16", m=1) | kwargs
    with pytest.raises(ValueError, match=match):
        Problem(**args)


def test_study_refuses_an_empty_op(store):
    with pytest.raises(ValueError, match="op must"):
        store.study(H100, Problem("", 1, 4096, 1024, "bfloat16"))


def test_trial_round_trip(store):
    ref = store.study(H100, Problem("o_proj_residual", 1, 1024, 2048, "bfloat16"))
    tid = store.add_trial(ref.id, trial_number=7, arm="fused", config=FUSED, status="ok", rel_error=2.5e-3,
                          compile_s=1.5, median_us=6.5, p20_us=6.3, p80_us=6.9)
    base = store.add_trial(ref.id, trial_number=None, arm="unfused", config=UNFUSED, status="failed",
                           reason="timing: RuntimeError: CUDA error")
    with store.session(write=False) as s:
        row = s.get(Trial, tid)
        assert (row.study_id, row.trial_number, row.arm, row.status, row.reason) == (ref.id, 7, "fused", "ok", None)
        assert row.config == FUSED and row.config_key == config_key(FUSED)
        assert (row.rel_error, row.compile_s, row.median_us, row.p20_us, row.p80_us) == (2.5e-3, 1.5, 6.5, 6.3, 6.9)
        assert row.created_at is not None
        row = s.get(Trial, base)
        assert (row.trial_number, row.config_key, row.median_us) == (None, "unfused", None)


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(arm="triton"), "arm must be"), (dict(status="crashed"), "status must be"),
    (dict(study_id=999), "no ks_studies row"),
])
def test_trial_argument_errors(store, kwargs, match):
    ref = store.study(H100, Problem("o_proj_residual", 1, 1024, 2048, "bfloat16"))
    args = dict(study_id=ref.id, trial_number=0, arm="fused", config=FUSED, status="ok") | kwargs
    with pytest.raises(ValueError, match=match):
        store.add_trial(**args)
    with store.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Trial)) == 0


def test_set_winner_upserts(store):
    ref = store.study(H100, Problem("rmsnorm_qkv", 1, 4096, 1024, "bfloat16"))
    kwargs = dict(median_us=4.9, unfused_us=20.3, cublas_us=6.0, floor_us=2.8, speedup=4.14, speedup_vs_cublas=1.22)
    store.set_winner(ref.id, arm="fused", config=FUSED, **kwargs)
    store.set_winner(ref.id, arm="unfused", config=UNFUSED, **(kwargs | dict(median_us=20.3, speedup=1.0)))
    with store.session(write=False) as s:
        rows = s.scalars(select(Winner)).all()
        assert [(w.study_id, w.arm, w.config, w.median_us, w.speedup) for w in rows] == [
            (ref.id, "unfused", UNFUSED, 20.3, 1.0)]
        first = rows[0].confirmed_at
    # Confirming the same winner again records when.
    store.set_winner(ref.id, arm="unfused", config=UNFUSED, **(kwargs | dict(median_us=20.3, speedup=1.0)))
    with store.session(write=False) as s:
        assert s.scalars(select(Winner.confirmed_at)).one() > first
    with pytest.raises(ValueError, match="arm must be"):
        store.set_winner(ref.id, arm="cublas", config=UNFUSED, **kwargs)


def test_a_winner_the_database_refuses_raises_its_own_error(store):
    """A winner missing a required value is refused with the database's error, not read back as a row a
    concurrent writer added (which answered 'No row was found' until the thirty-third session)."""
    ref = store.study(H100, Problem("rmsnorm_qkv", 1, 4096, 1024, "bfloat16"))
    with pytest.raises(sqlalchemy.exc.IntegrityError, match="median_us"):
        store.set_winner(ref.id, arm="unfused", config=UNFUSED, median_us=None, unfused_us=None, cublas_us=None,
                         floor_us=1.0, speedup=1.0, speedup_vs_cublas=None)
    assert store.winner(ref.id) is None


def test_inserts_that_lose_no_race_raise_the_databases_error(store):
    """get_or_create, the queue's enqueue and a config claim read a unique-key conflict as a concurrent
    writer's row; an insert refused for another reason (a missing value here) raises that refusal."""
    from storage import queue
    from storage.store import get_or_create

    ref = store.study(H100, Problem("rmsnorm_qkv", 1, 4096, 1024, "bfloat16"))
    with pytest.raises(sqlalchemy.exc.IntegrityError, match="device_name"), store.session() as s:
        get_or_create(s, Fingerprint, {"key": "k" * 64}, {"key": "k" * 64})
    with pytest.raises(sqlalchemy.exc.IntegrityError, match="trials"):
        queue.enqueue(store, ref.id, model=None, trials=None, priority=0)
    with pytest.raises(sqlalchemy.exc.IntegrityError, match="owner"):
        queue.claim_config(store, ref.id, "cfg", 0, None)
    assert queue.claim_config(store, ref.id, "cfg", 0, "w1") and not queue.claim_config(store, ref.id, "cfg", 1, "w2")


def test_unique_keys_are_enforced_by_the_database(store):
    store.study(H100, Problem("rmsnorm_qkv", 1, 4096, 1024, "bfloat16"), model="qwen3-0.6b")
    for row in (Shape(op="rmsnorm_qkv", n=4096, k=1024, dtype="bfloat16"),
                Study(fingerprint_id=1, shape_id=1, m=1, optuna_study_name="another name")):
        with pytest.raises(sqlalchemy.exc.IntegrityError):
            with store.session() as s:
                s.add(row)
    with store.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Study)) == 1


def test_session_rolls_back_on_error(store):
    with pytest.raises(RuntimeError):
        with store.session() as s:
            s.add(Shape(op="down_residual", n=1024, k=3072, dtype="bfloat16"))
            s.flush()
            raise RuntimeError("boom")
    with store.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Shape)) == 0


def test_a_study_queued_by_a_plan_is_queued_once_by_it(store):
    """`tune --gpus` and each worker it starts queue the same studies under the run's plan id, whichever
    comes first: the second leaves the entry as it is, even one a worker has finished since. Another run
    (or none) re-opens a finished study with its budget, as a re-run with more trials does."""
    from storage import queue
    from storage.models import QueueEntry

    ref = store.study(H100, Problem("rmsnorm_qkv", 1, 4096, 1024, "bfloat16"))

    def entry():
        with store.session(write=False) as s:
            e = s.scalars(select(QueueEntry)).one()
            return e.state, e.trials, e.plan

    queue.enqueue(store, ref.id, model="m", trials=8, priority=0, plan="run-1")
    claim = queue.claim(store, fingerprint_key(H100), "w1", 60)
    queue.finish(store, claim.queue_id, "w1")
    queue.enqueue(store, ref.id, model="m", trials=8, priority=0, plan="run-1")  # the run's second planner
    assert entry() == ("done", 8, "run-1")
    queue.enqueue(store, ref.id, model="m", trials=12, priority=0, plan="run-2")  # a re-run, more trials
    assert entry() == ("queued", 12, "run-2")
    claim = queue.claim(store, fingerprint_key(H100), "w1", 60)
    queue.finish(store, claim.queue_id, "w1")
    queue.enqueue(store, ref.id, model="m", trials=16, priority=0)  # tune in one process: no plan id
    assert entry() == ("queued", 16, None)
