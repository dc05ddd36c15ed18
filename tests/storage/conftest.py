"""Fixtures: an empty store, and a filled one copied from a database written once per session; each
on SQLite and on PostgreSQL (the postgres-marked half, on the session's server)."""

from __future__ import annotations

import shutil

import pytest

from storage import Store
from tests.conftest import BACKENDS
from tests.storage.fill import fill

TEMPLATE_DB = "ks_filled_template"


@pytest.fixture(params=BACKENDS)
def db_backend(request) -> str:
    """Every storage test that opens a database runs once per kind (overrides tests/conftest.py's)."""
    return request.param


@pytest.fixture
def store(new_db_url):
    with Store(new_db_url()) as s:
        yield s


@pytest.fixture(scope="session")
def filled_template(tmp_path_factory):
    """(path of a filled SQLite database file, what fill() wrote). Closing the store checkpoints the
    WAL into the file, so copying the one file copies the whole database."""
    path = tmp_path_factory.mktemp("filled") / "ks.db"
    with Store(f"sqlite:///{path}") as s:
        info = fill(s)
    return path, info


@pytest.fixture(scope="session")
def filled_pg_template(postgres_server):
    """What fill() wrote into database TEMPLATE_DB, which each test copies. The store is closed
    first: PostgreSQL copies a template only while nobody is connected to it."""
    with Store(postgres_server.create_database(TEMPLATE_DB)) as s:
        info = fill(s)
    return info


@pytest.fixture
def filled(request, db_backend, new_db_url, tmp_path):
    """A Store on a private copy of the filled database, and the fill() record."""
    if db_backend == "sqlite":
        src, info = request.getfixturevalue("filled_template")
        dst = tmp_path / "filled.db"
        shutil.copy(src, dst)
        url = f"sqlite:///{dst}"
    else:
        info = request.getfixturevalue("filled_pg_template")
        url = new_db_url("filled", template=TEMPLATE_DB)
    with Store(url) as s:
        yield s, info
