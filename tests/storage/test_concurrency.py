"""Several processes on one database (a SQLite file, a PostgreSQL database): first opens racing on
the schema, and writers racing on the same study. Nothing may fail, and no row may be lost or doubled."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from sqlalchemy import func, select

from kernel_space.spec import Problem
from storage import Store, Study, Trial, engine, queue
from tests.conftest import child_env
from tests.storage.fill import FUSED, H100

PROCESSES = 3

# A fresh interpreter per process (storage imports no torch, so each starts in about a second). All
# wait for the go file, then open the same new database, Optuna's storage and one Optuna study.
OPENER = textwrap.dedent("""
    import os, sys, time
    import optuna
    from storage import Store
    url, ready, go = sys.argv[1:4]
    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.001)
    store = Store(url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name="shared", storage=store.optuna_storage(), load_if_exists=True)
    print("opened")
""")


@pytest.mark.timeout(120)
def test_first_opens_do_not_race_on_migrations(tmp_path, new_db_url):
    url = new_db_url("fresh")
    env = child_env()
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", OPENER, url, str(tmp_path / f"ready{i}"), str(go)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for i in range(PROCESSES)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready{i}").exists() for i in range(PROCESSES)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "an opener died early"
        time.sleep(0.01)
    go.touch()
    results = [p.communicate(timeout=60) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "opened"
    with Store(url) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM ks_alembic_version").fetchall() == [("0007",)]
        assert conn.exec_driver_sql("SELECT study_name FROM studies").fetchall() == [("shared",)]
        assert conn.exec_driver_sql("SELECT count(*) FROM version_info").fetchone() == (1,)


TRIALS_EACH = 40
# Studies that every writer queues and confirms a winner of at once: races to insert the first row.
RACED_WINNERS = 12


def _writer(url: str, worker: int, go, barrier, errors) -> None:
    try:
        go.wait(30)
        store = Store(url)
        for m in range(2, 2 + RACED_WINNERS):
            raced = store.study(H100, Problem("rmsnorm_qkv", m, 4096, 1024, "bfloat16"), model="qwen3-0.6b")
            barrier.wait(30)  # all writers queue this study, then confirm its first winner, at the same moment
            queue.enqueue(store, raced.id, model="qwen3-0.6b", trials=8 + worker, priority=m)
            store.set_winner(raced.id, arm="fused", config=FUSED, median_us=5.0 + worker, unfused_us=20.3,
                             cublas_us=6.0, floor_us=2.8, speedup=4.0, speedup_vs_cublas=1.2)
        ref = store.study(H100, Problem("rmsnorm_qkv", 1, 4096, 1024, "bfloat16"), model="qwen3-0.6b")
        for i in range(TRIALS_EACH):
            store.add_trial(ref.id, trial_number=worker * 1000 + i, arm="fused", config=FUSED, status="ok",
                            median_us=5.0 + worker + i / 100)
        store.set_winner(ref.id, arm="fused", config=FUSED, median_us=5.0 + worker, unfused_us=20.3,
                         cublas_us=6.0, floor_us=2.8, speedup=4.0, speedup_vs_cublas=1.2)
        store.close()
    except BaseException as exc:  # reported to the parent: an exception in a child is otherwise silent
        errors.put(f"worker {worker}: {type(exc).__name__}: {exc}")
        raise


@pytest.mark.timeout(120)
def test_concurrent_writers_lose_nothing(new_db_url, db_backend):
    # fork: the children start without re-importing torch (kernel_space.fingerprint and kernel_space need it).
    ctx = multiprocessing.get_context("fork")
    url = new_db_url("shared")
    go, barrier, errors = ctx.Event(), ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, w, go, barrier, errors)) for w in range(PROCESSES)]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(90)
    failures = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert failures == [] and [p.exitcode for p in procs] == [0] * PROCESSES
    with Store(url) as store:
        with store.engine.connect() as conn:
            if db_backend == "sqlite":
                assert conn.exec_driver_sql("PRAGMA integrity_check").fetchone() == ("ok",)
            assert conn.exec_driver_sql("SELECT count(*) FROM ks_studies").fetchone() == (1 + RACED_WINNERS,)
            assert conn.exec_driver_sql("SELECT count(*) FROM ks_fingerprints").fetchone() == (1,)
            assert conn.exec_driver_sql("SELECT count(*) FROM ks_winners").fetchone() == (1 + RACED_WINNERS,)
            assert conn.exec_driver_sql("SELECT count(*) FROM ks_queue").fetchone() == (RACED_WINNERS,)
        with store.session(write=False) as s:
            numbers = sorted(s.scalars(select(Trial.trial_number)))
            study_id = s.scalars(select(Study.id).where(Study.m == 1)).one()
            assert s.scalar(select(func.count()).select_from(Trial).where(Trial.study_id != study_id)) == 0
        # The losers' inserts were refused by the unique key (on PostgreSQL they still used up ids).
        assert store.study(H100, Problem("rmsnorm_qkv", 1, 4096, 1024, "bfloat16")).id == study_id
    assert numbers == sorted(w * 1000 + i for w in range(PROCESSES) for i in range(TRIALS_EACH))


class _BusyCursor:
    """A sqlite3 cursor whose WAL switch meets `busy` "database is locked" answers, then works."""

    def __init__(self, busy: int, error: str = "database is locked"):
        self.busy, self.error, self.mode = busy, error, "delete"

    def execute(self, sql: str):
        if sql == "PRAGMA journal_mode = WAL":
            if self.busy:
                self.busy -= 1
                raise sqlite3.OperationalError(self.error)
            self.mode = "wal"
        return self

    def fetchone(self):
        return (self.mode,)


def test_first_openers_retry_the_wal_switch():
    # SQLite answers the switch "database is locked" without its busy wait while another process
    # creates the same new file (seen in CI: one of three writers failed to open the database).
    cursor = _BusyCursor(busy=3)
    engine._switch_to_wal(cursor)
    assert cursor.mode == "wal" and cursor.busy == 0


def test_the_wal_switch_does_not_hide_other_errors():
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        engine._switch_to_wal(_BusyCursor(busy=1, error="disk I/O error"))
