"""Database URL resolution, engine setup and the lock that serializes schema creation.

SQLite is the default (one file in the working directory). Every SQLite connection gets WAL, so
readers (queries, dashboards) never block the tuner's writes, and a 30 s busy timeout, so several
tuning processes writing one file wait for each other instead of failing with "database is locked".

PostgreSQL (many tuners on many GPUs and hosts) goes through psycopg 3, the `postgres` extra: a
plain `postgresql://` URL means psycopg when it is installed (SQLAlchemy 2.0's own default is psycopg2).

Read-only opening (readonly=True: what show, query, report, dashboard and export use) changes
nothing on disk: SQLite opens the file with mode=ro, and immutable=1 while no writer has it open
(see readonly_uri); no WAL switch, no schema, no lock file. That also works in a folder the user
cannot write.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Engine, make_url

from storage.url import DEFAULT_URL, ENV_VAR, resolve_url  # noqa: F401 (this module's names before storage.url)

# A trial write takes milliseconds; 30 s covers a migration or an Optuna batch in another process.
BUSY_TIMEOUT_S = 30
# A write transaction first waits for SQLite's write lock in short sleeps of our own, doubling from
# LOCK_POLL_FIRST_S to LOCK_POLL_MAX_S, for up to LOCK_POLL_FOR_S; then in SQLite's busy wait (see
# _begin_writing). KERNEL_SEARCH_SQLITE_WAIT=busy leaves all of the wait to SQLite (to measure).
LOCK_POLL_FIRST_S = 0.00005
LOCK_POLL_MAX_S = 0.001
LOCK_POLL_FOR_S = 1.0
# Execution option read by the SQLite "begin" hook: which BEGIN a transaction starts with.
SQLITE_BEGIN = "ks_sqlite_begin"
# Set while a read-only call runs on an engine whose transactions begin IMMEDIATE (Optuna's, see
# storage.store.serialize_sqlite): its transactions then begin DEFERRED, and take no write lock.
_READING = contextvars.ContextVar("ks_sqlite_reading", default=False)
_PG_LOCK_ID = 0x6B735F696E6974  # "ks_init": the advisory lock serializing schema creation
# Without it an unreachable host hangs for the kernel's TCP retries (about two minutes) before failing.
PG_CONNECT_TIMEOUT_S = 10
POSTGRES_HINT = 'pip install -e ".[postgres]"'


class StorageError(ValueError):
    """A database the store cannot use (bad URL, unreachable server, foreign schema), or a request
    that has no answer in it. The message is one line meant for the user."""


def parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError) as exc:
        raise StorageError(f"bad database URL {url!r}: {_first_line(exc)} (expected e.g. {DEFAULT_URL})") from None


def display_url(url: str | URL) -> str:
    """The URL with any password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return str(url)


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL; None for other backends and in-memory databases."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.database.startswith("file:"):  # URI form; no file of ours to lock next to
        return None
    return Path(url.database)


def driver_url(url: str | URL) -> URL:
    """The URL SQLAlchemy should open: `postgresql://` becomes `postgresql+psycopg://` when psycopg 3
    is installed; any other URL (an explicit driver included) is kept."""
    parsed = url if isinstance(url, URL) else parse_url(url)
    if parsed.drivername == "postgresql" and importlib.util.find_spec("psycopg") is not None:
        return parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str, readonly: bool = False) -> Engine:
    """An engine for `url`, with the SQLite settings above (read-only ones when `readonly`). Raises
    StorageError for a bad URL or a missing driver; it does not connect yet."""
    parsed = driver_url(url)
    backend = parsed.get_backend_name()
    try:
        engine = sqlalchemy.create_engine(parsed, **engine_kwargs(parsed, readonly))
    except sqlalchemy.exc.NoSuchModuleError:
        raise StorageError(f"bad database URL {display_url(parsed)}: unknown database kind "
                           f"{parsed.drivername!r}") from None
    except ImportError as exc:
        hint = f" ({POSTGRES_HINT} installs psycopg)" if backend == "postgresql" else ""
        raise StorageError(f"database URL {display_url(parsed)} needs a driver that is not installed: "
                           f"{_first_line(exc)}{hint}") from None
    if backend == "sqlite":
        add_sqlite_hooks(engine, readonly)
    return engine


def engine_kwargs(url: URL, readonly: bool = False) -> dict:
    """create_engine's keyword arguments for `url` (also given to Optuna's engine)."""
    if url.get_backend_name() == "postgresql":  # libpq's option: an unreachable host fails fast
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": PG_CONNECT_TIMEOUT_S}}
    if url.get_backend_name() != "sqlite":
        return {"pool_pre_ping": True}
    path = sqlite_path(url)
    if not readonly or path is None:
        return {"connect_args": {"timeout": BUSY_TIMEOUT_S}}
    # The URI is decided per connection and no connection is pooled: whether a writer is active
    # (see readonly_uri) can change while a dashboard runs. check_same_thread off: the dashboard
    # reads from its request threads (pysqlite's default for files).
    return {"poolclass": sqlalchemy.pool.NullPool,
            "creator": lambda: sqlite3.connect(readonly_uri(path), uri=True, timeout=BUSY_TIMEOUT_S,
                                               check_same_thread=False)}


def readonly_uri(path: Path) -> str:
    """SQLite's URI for reading `path` without writing anything beside it."""
    quoted = urllib.parse.quote(str(path.resolve()))
    # Without a -wal file no writer has the database open (the last one to close checkpoints and
    # deletes it): then the file is read as immutable, which creates no -wal/-shm beside it (mode=ro
    # alone leaves both behind, and fails in a folder the user cannot write). With one, a tuner is
    # running: read through its WAL like any reader. A writer that starts during one of our
    # connections (one query: no connection is pooled) writes to its new WAL, not the file we read;
    # the file changes only at a checkpoint, after 1000 pages of WAL.
    wal = path.with_name(path.name + "-wal")
    return f"file:{quoted}?mode=ro" + ("" if wal.exists() else "&immutable=1")


def foreign_tables(path: Path) -> list[str]:
    """The tables of an existing SQLite file when none is ours or Optuna's (another application's
    database, which a write must not add tables to); [] otherwise. Reads without writing."""
    if not path.is_file() or path.stat().st_size == 0:
        return []
    conn = sqlite3.connect(readonly_uri(path), uri=True)
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from None
    finally:
        conn.close()
    ours = any(name.startswith("ks_") or name in ("studies", "alembic_version") for name in tables)
    return [] if ours else tables


def add_sqlite_hooks(engine: Engine, readonly: bool = False) -> None:
    """Our connect and begin hooks on a SQLite engine (ours or Optuna's)."""
    event.listen(engine, "connect", _sqlite_connect_readonly if readonly else _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)


def _sqlite_connect_readonly(dbapi_connection, _record) -> None:
    # No journal_mode here: switching a database to WAL writes its header.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
    cursor.execute("PRAGMA query_only = ON")
    cursor.close()


def _sqlite_connect(dbapi_connection, _record) -> None:
    # The sqlite3 module's own transaction handling starts no transaction before DDL and always a
    # DEFERRED one before DML; turning it off lets _sqlite_begin emit BEGIN itself (SQLAlchemy's
    # documented recipe), which makes migrations transactional and writes IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
    _switch_to_wal(cursor)
    # In WAL mode NORMAL syncs the file at checkpoints, not at every commit: a commit survives the
    # process being killed (kill -9 loses nothing committed), and only a power loss or a crash of the
    # host's kernel may roll back the last commits, never corrupt the file. FULL (the default) put an
    # fsync inside every write transaction, under the write lock that all tuners of one file share:
    # about 30 of them a config.
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _switch_to_wal(cursor) -> None:
    # WAL is stored in the file, so only its first opener switches. That switch needs an exclusive
    # lock and SQLite answers it "database is locked" at once, without the busy wait, while another
    # process is creating the same new file; so several first openers retry until the busy timeout.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_begin(connection) -> None:
    # A write transaction that starts DEFERRED reads first and must then upgrade its lock; in WAL
    # mode that upgrade fails at once (SQLITE_BUSY_SNAPSHOT, no busy wait) when another process
    # wrote in between. IMMEDIATE takes the write lock up front, where the busy timeout applies.
    mode = "DEFERRED" if _READING.get() else connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
    if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
        raise ValueError(f"{SQLITE_BEGIN} must be DEFERRED, IMMEDIATE or EXCLUSIVE, got {mode!r}")
    if mode == "DEFERRED" or not _begin_writing(connection.connection.driver_connection, mode):
        connection.exec_driver_sql(f"BEGIN {mode}")


def _begin_writing(raw: sqlite3.Connection, mode: str) -> bool:
    """Begin a write transaction on `raw` (a sqlite3 connection) while the write lock is free or comes
    free within LOCK_POLL_FOR_S, trying again after sleeps of 50 us doubling to 1 ms; False if it did
    not (the caller then waits in SQLite's busy wait, up to BUSY_TIMEOUT_S).

    SQLite's own wait sleeps 1, 2, 5, 10, ... ms between its tries: a worker finding the lock held
    for the half millisecond of another's write slept a millisecond or more, and workers sharing one
    file write several times a config. benchmarks/contention_probe.py, four processes on one file of
    a 64-CPU host (the study loop with nothing but its database work), one run each: asking took 8.0 s
    a process with SQLite's wait and 6.8 with this one (3.3 alone, 4.2 with a file each); on the
    development machine's two cores, with two processes, no difference."""
    if os.environ.get("KERNEL_SEARCH_SQLITE_WAIT") == "busy":
        return False
    raw.execute("PRAGMA busy_timeout = 0")
    try:
        delay, deadline = LOCK_POLL_FIRST_S, time.monotonic() + LOCK_POLL_FOR_S
        while True:
            try:
                raw.execute(f"BEGIN {mode}")
                return True
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    return False
            time.sleep(delay)
            delay = min(2 * delay, LOCK_POLL_MAX_S)
    finally:
        raw.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")


@contextlib.contextmanager
def reading() -> Iterator[None]:
    """Transactions begun inside this block on SQLite start DEFERRED whatever their engine's option:
    for calls that only read, which then never wait for the write lock nor hold it (in WAL mode a
    reader sees a snapshot and blocks no writer)."""
    token = _READING.set(True)
    try:
        yield
    finally:
        _READING.reset(token)


@contextlib.contextmanager
def init_lock(engine: Engine) -> Iterator[None]:
    """Serialize schema creation (ours and Optuna's) across processes.

    SQLite file: an flock on `<db>.lock` next to it (the file stays; it is empty). PostgreSQL: a
    session advisory lock. Other backends: no lock (create their schema once before many workers).
    """
    url = engine.url
    path = sqlite_path(url)
    if path is not None:
        try:
            import fcntl  # POSIX only; without it concurrent first opens are not serialized
        except ImportError:
            yield
            return
        lock_path = path.with_name(path.name + ".lock")
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif url.get_backend_name() == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_ID})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_ID})
                conn.commit()
    else:
        yield


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
