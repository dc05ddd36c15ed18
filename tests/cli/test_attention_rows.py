"""Decode attention's winners in `query` and `show`: the op names its context, M is the batch, the
narrow tables still fit 100 columns, --m-min / --m-max filter the batch, and CSV carries the context."""

from __future__ import annotations

import copy
import csv
import io
import json

import pytest

from tests.cli.helpers import run
from tests.storage.test_attention_table import bucket, table


@pytest.fixture
def attention_db(tmp_path) -> str:
    """qwen3-0.6b's decode attention at 4,096, 32,768 and 40,960 slots, beside a linear op."""
    data = copy.deepcopy(table())
    data["ops"]["decode_attention"]["buckets"].append(bucket(256, 40960, "unfused"))
    path = tmp_path / "table.json"
    path.write_text(json.dumps(data))
    url = f"sqlite:///{tmp_path / 'ks.db'}"
    assert run("import", path, "--db", url).exit_code == 0
    return url


@pytest.mark.parametrize("command", ["query", "show"])
def test_narrow_tables_name_the_context_within_100_columns(attention_db, command):
    out = run(command, "--db", attention_db, env={"COLUMNS": "100"}).stdout
    assert max(len(line) for line in out.splitlines()) <= 100, out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("decode_attention")]
    assert [(r[1], r[2]) for r in rows] == [("ctx=4k", "1"), ("ctx=4k", "8"), ("ctx=32k", "1"), ("ctx=40k", "256")]


def test_m_filters_the_batch_and_csv_has_the_context(attention_db):
    out = run("query", "--op", "decode_attention", "--m-min", "2", "-f", "csv", "--db", attention_db).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["m"], r["context"], r["n"], r["k"]) for r in rows] == [("8", "4096", "16008", "128"),
                                                                    ("256", "40960", "16008", "128")]
    linear = run("query", "--op", "o_proj_residual", "-f", "json", "--db", attention_db).stdout
    assert json.loads(linear)[0]["context"] is None


def test_wide_shows_the_heads_and_beats_cublas_does_not_ask_attention(attention_db):
    out = run("query", "--wide", "--op", "decode_attention", "--db", attention_db).stdout
    assert "16/8 heads x 128" in out and "SPLITS=" in out
    result = run("query", "--beats-cublas", "--db", attention_db)
    assert result.exit_code == 0 and "no cuBLAS time" not in result.stderr
