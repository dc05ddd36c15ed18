"""Test-wide setup: without a GPU, Triton kernels run through its interpreter; one PostgreSQL server
for the session (tests/postgres.py) for the tests marked `postgres`.

TRITON_INTERPRET must be set before triton is first imported, so it is set here, at collection.
"""

import fcntl
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

requires_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
# A test that runs Triton kernels on CPU tensors: only under the interpreter (set above without a GPU;
# on a GPU machine tests/qwen3/test_gpu.py runs the same paths on the GPU).
requires_interpreter = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1",
                                          reason="runs Triton kernels on CPU tensors: needs TRITON_INTERPRET=1")

# The database kinds a storage test runs on; the postgres one carries the marker (-m "not postgres"
# leaves it out).
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
_database_numbers = itertools.count()


def pytest_configure(config):
    config.addinivalue_line("markers", "postgres: needs the session's PostgreSQL server (tests/postgres.py)")


def child_env(*drop: str, **extra: str) -> dict:
    """os.environ for a child process that runs this tree: the repository first on PYTHONPATH, what was
    there kept after it (on the GPU machine the packages carried for the run are there), the variables
    named in `drop` left out (e.g. TRITON_INTERPRET, for a child that compiles for a GPU), then `extra`.
    A child given TRITON_INTERPRET=1 sees no GPU (CUDA_VISIBLE_DEVICES empty, unless `extra` says
    otherwise): it runs the CPU path it tests on a GPU machine too, where `tune` would refuse the
    interpreter beside a GPU."""
    root = str(Path(__file__).resolve().parents[1])
    if extra.get("TRITON_INTERPRET") == "1":
        extra = {"CUDA_VISIBLE_DEVICES": "", **extra}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])), **extra}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def postgres_server():
    """The session's PostgreSQL server, started on first use and stopped at the end. If it cannot
    start, its tests fail in CI ($CI set: they must run there) and skip elsewhere, with the reason."""
    from tests.postgres import PostgresUnavailable, start

    try:
        import psycopg  # noqa: F401 - the driver the postgres extra brings
    except ImportError:
        _unavailable('psycopg is not installed: pip install -e ".[postgres]"')
    try:
        server = start(os.environ.get("KS_TEST_PG_ROOT") or None)
    except PostgresUnavailable as exc:
        reason = str(exc)
    else:
        reason = None
    if reason is not None:
        _unavailable(f"PostgreSQL server unavailable: {reason}")
    yield server
    server.stop()


def _unavailable(message: str):
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture
def db_backend() -> str:
    """The database kind of new_db_url; SQLite here, parametrized over BACKENDS where a conftest or a
    test says so."""
    return "sqlite"


@pytest.fixture
def new_db_url(request, db_backend, tmp_path):
    """A factory of URLs of fresh, empty databases of kind `db_backend`: a file in tmp_path, or a new
    database on the session's PostgreSQL server, dropped when the test ends."""
    created, names = [], set()

    def make(name: str = "ks", template: str | None = None) -> str:
        """`template`: on PostgreSQL, the database to copy (CREATE DATABASE ... TEMPLATE)."""
        if name in names:
            raise ValueError(f"database name {name!r} already made in this test")
        names.add(name)
        if db_backend == "sqlite":
            return f"sqlite:///{tmp_path / f'{name}.db'}"
        server = request.getfixturevalue("postgres_server")
        database = f"ks_test_{next(_database_numbers)}_{name}"
        created.append((server, database))
        return server.create_database(database, template=template)

    yield make
    for server, database in created:
        server.drop_database(database)


@pytest.fixture(scope="session")
def once(tmp_path_factory, worker_id):
    """once(name, make) -> make()'s result (JSON), computed once a test session: by the first
    pytest-xdist worker that asks, while the others wait on a lock in the workers' common temporary
    folder, then read back by every asker. For costly fixtures that many modules or workers need: a
    module fixture is set up again on every worker that runs one of its module's tests."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if worker_id != "master" else base) / "once"
    shared.mkdir(exist_ok=True)

    def get(name: str, make):
        result = shared / f"{name}.json"
        with open(shared / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not result.exists():
                value = json.dumps(make(shared))
                result.write_text(value)
        return json.loads(result.read_text())

    return get


# The tiny preset's tune that the tuner's and the dashboards' tests read (12 studies: ~45 s under the
# interpreter).
TINY_TUNE = ("tune", "--model", "qwen3-tiny", "--buckets", "1,4", "--trials", "6", "--batch", "3")


def _tiny_tune(folder: Path) -> dict:
    db = folder / "tiny_tune.db"
    env = child_env(TRITON_INTERPRET="1", COLUMNS="200")
    env.pop("KERNEL_SEARCH_DB", None)
    done = subprocess.run([sys.executable, "-m", "cli.app", *TINY_TUNE, "--db", f"sqlite:///{db}"],
                          cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return {"db": str(db), "stdout": done.stdout}


@pytest.fixture(scope="module")
def tiny_tune(once, tmp_path_factory) -> tuple[Path, str]:
    """A database written by `kernel-search TINY_TUNE` under the interpreter (one tune a test session:
    once), copied for the module to change as it likes, and what the tune printed."""
    tuned = once("tiny_tune", _tiny_tune)
    db, folder = Path(tuned["db"]), tmp_path_factory.mktemp("tiny_tune")
    for part in db.parent.glob(db.name + "*"):  # the database and any write-ahead log beside it
        shutil.copy(part, folder / part.name)
    return folder / db.name, tuned["stdout"]
