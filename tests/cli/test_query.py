"""`kernel-search query` in each format, with its filters."""

from __future__ import annotations

import csv
import io
import json

import pytest

from storage.queries import WINNER_COLUMNS
from tests.cli.helpers import assert_one_line_error, run
from tests.storage.fill import FUSED


def rows_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_json_has_every_winner_with_its_config(filled):
    store, info = filled
    result = run("query", "--format", "json", "--db", store.url)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == info.winners and list(rows[0]) == WINNER_COLUMNS
    qkv = next(r for r in rows if r["gpu"] == "NVIDIA H100 80GB HBM3" and r["op"] == "rmsnorm_qkv" and r["m"] == 1)
    assert qkv["config"] == FUSED and qkv["models"] == "qwen3-0.6b,qwen3-0.6b-ft"
    assert (qkv["median_us"], qkv["unfused_us"], qkv["cublas_us"], qkv["floor_us"]) == (4.9, 20.3, 6.0, 2.8)


def test_csv_round_trips_the_config_as_json(filled):
    store, info = filled
    result = run("query", "-f", "csv", "--db", store.url)
    assert result.exit_code == 0, result.output
    rows = rows_csv(result.stdout)
    assert len(rows) == info.winners and list(rows[0]) == WINNER_COLUMNS
    assert {json.dumps(json.loads(r["config"]), sort_keys=True) for r in rows} >= {
        json.dumps(FUSED, sort_keys=True), json.dumps({"impl": "unfused"})}


@pytest.mark.parametrize(("args", "expected"), [
    (["--beats-cublas"], {("qwen3-0.6b", "rmsnorm_qkv", "1"), ("qwen3-0.6b", "rmsnorm_qkv", "16"),
                          ("qwen3-0.6b", "rmsnorm_gate_up_silu", "1"), ("qwen3-8b", "rmsnorm_qkv", "1"),
                          ("qwen3-8b", "down_residual", "1")}),
    (["--gpu", "H200"], {("qwen3-0.6b", "rmsnorm_qkv", "1")}),
    (["--model", "qwen3-8b", "--op", "down_residual"], {("qwen3-8b", "down_residual", "1")}),
    (["--model", "qwen3-0.6b", "--m-min", "2"], {("qwen3-0.6b", "rmsnorm_qkv", "16"),
                                                  ("qwen3-0.6b", "rmsnorm_qkv", "256")}),
    (["--m-max", "1", "--min-speedup", "3"], {("qwen3-0.6b", "rmsnorm_qkv", "1"),
                                              ("qwen3-0.6b", "rmsnorm_gate_up_silu", "1")}),
])
def test_filters(filled, args, expected):
    store, _ = filled
    result = run("query", *args, "--format", "csv", "--db", store.url)
    assert result.exit_code == 0, result.output
    got = {(r["models"].split(",")[0], r["op"], r["m"]) for r in rows_csv(result.stdout)}
    assert got == expected


def test_table_format(filled):
    store, info = filled
    result = run("query", "--wide", "--db", store.url)
    assert result.exit_code == 0, result.output
    assert f"{info.winners} winners" in result.stdout
    line = next(x for x in result.stdout.splitlines() if "NVIDIA H200" in x)
    for cell in ("rmsnorm_qkv", "4096 x 1024", "fused", "4.40", "18.00", "5.50", "2.30", "4.091", "1.250",
                 "16x64x256 path=dot SPLIT_K=4"):
        assert cell in line, line


def test_empty_results(filled):
    store, _ = filled
    empty = ("--op", "rmsnorm_qkv", "--m-min", "1000")
    result = run("query", *empty, "--db", store.url)
    assert result.exit_code == 0 and result.stdout == "" and "no winners match" in result.stderr
    assert json.loads(run("query", *empty, "-f", "json", "--db", store.url).stdout) == []
    assert run("query", *empty, "-f", "csv", "--db", store.url).stdout.strip() == ",".join(WINNER_COLUMNS)
    # Where the other filters match, the message says what the speedup filters left out.
    result = run("query", "--min-speedup", "1000", "--db", store.url)
    assert result.exit_code == 0 and result.stdout.count("winners") == 0
    assert "none has a speedup >= 1000 over the unfused arm" in result.stderr


def test_query_errors_are_one_line(filled, tmp_path):
    store, _ = filled
    assert_one_line_error(run("query", "--model", "qwen3-9b", "--db", store.url), "unknown model 'qwen3-9b'",
                          "qwen3-0.6b, qwen3-0.6b-ft, qwen3-8b")
    assert_one_line_error(run("query", "--db", "not a url"), "bad database URL")
    assert_one_line_error(run("query", env={"KERNEL_SEARCH_DB": f"sqlite:///{tmp_path / 'gone.db'}"}),
                          "no database at", "gone.db")
    bad_format = run("query", "--format", "xml", "--db", store.url)
    assert bad_format.exit_code == 2 and "xml" in bad_format.stderr
