"""Alembic, run programmatically: the migrations ship inside the package, no alembic.ini needed."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy
from sqlalchemy.engine import Connection, Engine

from storage.engine import SQLITE_BEGIN, StorageError, display_url, make_engine

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "ks_alembic_version"  # Optuna owns `alembic_version` in the same database
# The newest revision in migrations/versions (a test checks it against Alembic's own answer). Opening a
# database at head reads its revision with one SELECT and imports no Alembic: 0.3-0.4 s of every
# command's and every worker's start-up (alembic brings mako and pygments).
HEAD = "0007"


def _config(connection: Connection | None = None):
    from alembic.config import Config

    cfg = Config()
    # Config values go through ConfigParser interpolation: a '%' in the path must be doubled.
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision this code knows."""
    return HEAD


def script_head() -> str:
    """The newest revision of migrations/versions, as Alembic reads it (HEAD must be it)."""
    return _script().get_current_head()


def _script():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def current(connection: Connection) -> str | None:
    """The revision the database is at; None before the first migration. One row, as Alembic keeps it
    (a database with two rows is not one this code wrote: Alembic is asked, and says so)."""
    if not sqlalchemy.inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(sqlalchemy.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(rows) <= 1:
        return rows[0] if rows else None
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def check_readable(connection: Connection, at: str | None, url: str) -> None:
    """StorageError unless a database opened read-only is a kernel-search database at head: a read
    command neither creates our tables in another application's file nor migrates one."""
    if at == head():
        return
    if at is None:
        tables = sqlalchemy.inspect(connection).get_table_names()
        found = f"its tables: {', '.join(tables[:5])}{', ...' if len(tables) > 5 else ''}" if tables else "it is empty"
        raise StorageError(f"{display_url(url)} is not a kernel-search database ({found}); tune or import "
                           "into a new file, or pass --db")
    if at not in {rev.revision for rev in _script().walk_revisions()}:
        raise StorageError(f"database {display_url(url)} has kernel-search schema revision {at!r}, newer than "
                           f"this version knows (head {head()!r}): upgrade kernel-search")
    raise StorageError(f"database {display_url(url)} has an older kernel-search schema ({at!r}); a writing "
                       "command (tune or import) migrates it")


def upgrade(engine: Engine) -> None:
    """Bring the `ks_` tables to head in one transaction (on SQLite BEGIN IMMEDIATE: a concurrent
    opener waits, then finds the schema at head). Callers hold storage.engine.init_lock."""
    from alembic import command

    script = _script()
    with engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"}).begin() as conn:
        at = current(conn)
        if at is not None and at not in {rev.revision for rev in script.walk_revisions()}:
            raise StorageError(
                f"database {display_url(engine.url)} has kernel-search schema revision {at!r}, newer than "
                f"this version knows (head {script.get_current_head()!r}): upgrade kernel-search"
            )
        if at != script.get_current_head():
            command.upgrade(_config(conn), "head")


def revision(message: str, url: str) -> None:
    """Developer tool: autogenerate a new revision from storage.models against a database at head."""
    from alembic import command

    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        command.revision(_config(conn), message=message, autogenerate=True)
