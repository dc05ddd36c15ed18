"""Alembic environment for the `ks_` tables.

Run by Store on open (storage.migrate.upgrade), which passes an open connection, already inside
the transaction the upgrade must run in, as config.attributes["connection"]. Optuna keeps its own
tables and its own `alembic_version` in the same database, so ours is `ks_alembic_version` and
autogenerate looks only at `ks_` tables (it would otherwise offer to drop Optuna's).

New revision, from the repository root (SQLite file at head first):
    PYTHONPATH=. python -c "from storage.migrate import revision; revision('add x', 'sqlite:///dev.db')"
"""

from __future__ import annotations

from alembic import context

from storage.models import Base

VERSION_TABLE = "ks_alembic_version"


def include_object(obj, name, type_, reflected, compare_to):
    if type_ == "table":
        return name.startswith("ks_")
    return True


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_object=include_object,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("storage/migrations runs through storage.migrate, which passes a connection")
run_migrations(connection)
