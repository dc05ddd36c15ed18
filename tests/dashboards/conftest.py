"""Fixtures: a database filled by a real CPU tuning run of the tiny preset, and a copy of it with a
second GPU's winners imported from an edited dispatch table."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.helpers import run
from tests.conftest import child_env

REPO = Path(__file__).resolve().parents[2]
SECOND_GPU = "NVIDIA H200"


@pytest.fixture(scope="session")
def tuned_db(tmp_path_factory) -> Path:
    """A database written by `tune --model qwen3-tiny --buckets 1,4` under the interpreter (~20 s)."""
    path = tmp_path_factory.mktemp("tuned") / "ks.db"
    env = child_env(TRITON_INTERPRET="1")
    env.pop("KERNEL_SEARCH_DB", None)
    done = subprocess.run(
        [sys.executable, "-m", "cli.app", "tune", "--model", "qwen3-tiny", "--buckets", "1,4", "--trials", "6",
         "--batch", "3", "--db", f"sqlite:///{path}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return path


@pytest.fixture(scope="session")
def two_gpu_db(tuned_db, tmp_path_factory) -> Path:
    """The tuned database plus the same table imported as if tuned on a second GPU."""
    folder = tmp_path_factory.mktemp("two_gpus")
    path = folder / "ks.db"
    shutil.copy(tuned_db, path)
    table = folder / "tiny.json"
    result = run("export", "--model", "qwen3-tiny", "--dtype", "float16", "-o", table, "--db", f"sqlite:///{path}")
    assert result.exit_code == 0, result.output
    doc = json.loads(table.read_text())
    doc["fingerprint"]["device_name"] = SECOND_GPU  # a new name gives a new fingerprint key
    for bucket in (b for entry in doc["ops"].values() for b in entry["buckets"]):
        bucket["median_us"] *= 0.5  # a faster GPU, so that the two GPUs' numbers differ
        bucket["baseline_us"] *= 0.5
    table.write_text(json.dumps(doc))
    result = run("import", table, "--db", f"sqlite:///{path}")
    assert result.exit_code == 0, result.output
    return path
