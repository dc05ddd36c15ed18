"""Fixtures: an empty store, and a filled one copied from a database written once per session."""

from __future__ import annotations

import shutil

import pytest

from storage import Store
from tests.storage.fill import fill


@pytest.fixture
def store(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'ks.db'}") as s:
        yield s


@pytest.fixture(scope="session")
def filled_template(tmp_path_factory):
    """(path of a filled database file, what fill() wrote). Closing the store checkpoints the WAL
    into the file, so copying the one file copies the whole database."""
    path = tmp_path_factory.mktemp("filled") / "ks.db"
    with Store(f"sqlite:///{path}") as s:
        info = fill(s)
    return path, info


@pytest.fixture
def filled(filled_template, tmp_path):
    """A Store on a private copy of the filled database, and the fill() record."""
    src, info = filled_template
    dst = tmp_path / "filled.db"
    shutil.copy(src, dst)
    with Store(f"sqlite:///{dst}") as s:
        yield s, info
