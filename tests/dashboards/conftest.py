"""Fixtures: a database filled by a real CPU tuning run of the tiny preset, and a copy of it with a
second GPU's winners imported from an edited dispatch table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli.helpers import run

REPO = Path(__file__).resolve().parents[2]
SECOND_GPU = "NVIDIA H200"


@pytest.fixture(scope="module")
def tuned_db(tiny_tune) -> Path:
    """A database written by `tune --model qwen3-tiny --buckets 1,4` under the interpreter (tests/conftest.py's
    tiny_tune: one tune a test session)."""
    return tiny_tune[0]


@pytest.fixture(scope="module")
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
