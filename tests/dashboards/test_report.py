"""The report page and the dashboard server, from real tuning databases (no browser here)."""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.request

import pytest

from dashboards import build_report, make_server
from dashboards.data import attention_per_context
from storage import Store
from storage.queries import importances_frame, studies_frame, winners_frame
from tests.cli.helpers import assert_one_line_error, run
from tests.dashboards.conftest import SECOND_GPU
from tests.dashboards.helpers import script_json

# The tune covers decode attention too: at the interpreter's one context (64 slots), shown as its own op.
OPS = {"rmsnorm_qkv", "o_proj_residual", "rmsnorm_gate_up_silu", "down_residual", "lm_head", "decode_attention ctx=64"}
NUMBERS = ("median_us", "unfused_us", "cublas_us", "floor_us", "speedup", "speedup_vs_cublas")


@pytest.fixture(scope="module")
def tuned_page(tuned_db, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = run("report", "--db", f"sqlite:///{tuned_db}", "-o", out)
    assert result.exit_code == 0, result.output
    return out.read_text()


def test_report_holds_every_op_and_bucket_with_the_database_numbers(tuned_db, tuned_page):
    data = script_json(tuned_page, "ks-data")
    (section,) = data["sections"]
    assert section["model"] == "qwen3-tiny" and set(section["ops"]) == OPS
    assert {(w["op"], w["m"]) for w in section["winners"]} == {(op, m) for op in OPS for m in (1, 4)}
    with Store(f"sqlite:///{tuned_db}") as store:
        expected = attention_per_context(winners_frame(store))
        studies = studies_frame(store)
    page = {(w["op"], w["m"]): w for w in section["winners"]}
    assert {w["context"] for w in section["winners"]} == {None, 64}
    for row in expected.to_dict("records"):
        got = page[(row["op"], row["m"])]
        assert got["arm"] == row["arm"]
        for name in NUMBERS:
            assert got[name] == (None if row[name] is None or row[name] != row[name] else row[name]), name
    assert {s["name"] for s in section["studies"]} == set(studies["name"])
    assert section["trials"] == int(studies["trials"].sum())


def test_report_is_self_contained_and_draws_every_kind_of_plot(tuned_page):
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", tuned_page, re.S)
    assert all("src=" not in attributes for attributes, _ in scripts)  # nothing to fetch: opens offline
    assert any("plotly.js v" in body[:500] and len(body) > 3_000_000 for _, body in scripts)  # plotly.js inline
    figures = script_json(tuned_page, "ks-figures")
    titles = " | ".join(str(f["figure"]["layout"].get("title", {}).get("text")) for f in figures)
    for expected in ("speedup over the unfused path", "latency against M", "best-so-far", "parameter importance"):
        assert expected in titles, titles
    heatmap = next(f["figure"] for f in figures if "speedup over" in f["figure"]["layout"]["title"]["text"])
    assert set(heatmap["data"][0]["y"]) == OPS and heatmap["data"][0]["x"] == ["1", "4"]
    assert all("unfused" in cell for row in heatmap["data"][0]["text"] for cell in row)  # CPU: unfused wins


def test_importances_come_from_the_optuna_studies(tuned_db):
    with Store(f"sqlite:///{tuned_db}") as store:
        found = importances_frame(store)
        too_few = importances_frame(store, op="rmsnorm_qkv", min_complete=1000)
    assert set(attention_per_context(found)["op"]) == OPS
    assert found["param"].notna().any() and (found["importance"].dropna() >= 0).all()
    assert too_few["param"].isna().all() and too_few["note"].str.contains("too few completed trials").all()
    assert len(too_few) == 2  # one row per study (M = 1 and 4)


def test_two_gpus_are_compared_side_by_side(two_gpu_db, tmp_path):
    out = tmp_path / "report.html"
    assert run("report", "--db", f"sqlite:///{two_gpu_db}", "-o", out).exit_code == 0
    html = out.read_text()
    data = script_json(html, "ks-data")
    assert len(data["gpus"]) == 2 and SECOND_GPU in {g["gpu"] for g in data["gpus"]}
    assert "GPUs side by side" in html and "winners per GPU" in html
    second = next(s for s in data["sections"] if s["gpu"] == SECOND_GPU)
    first = next(s for s in data["sections"] if s["gpu"] != SECOND_GPU)
    times = {(w["op"], w["m"]): w["median_us"] for w in first["winners"]}
    assert len(second["winners"]) == 12  # 5 linear ops and decode attention at M = 1 and 4
    for w in second["winners"]:
        assert w["median_us"] == pytest.approx(times[(w["op"], w["m"])] * 0.5)


def test_empty_database_says_so(tmp_path):
    Store(f"sqlite:///{tmp_path / 'empty.db'}").close()
    out = tmp_path / "report.html"
    result = run("report", "--db", f"sqlite:///{tmp_path / 'empty.db'}", "-o", out)
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert 'id="ks-empty"' in html and "holds no studies" in html
    assert script_json(html, "ks-data")["sections"] == []


@pytest.mark.parametrize("command", ["report", "dashboard"])
def test_missing_database_is_one_line(tmp_path, command):
    result = run(command, "--db", f"sqlite:///{tmp_path / 'nope.db'}")
    assert_one_line_error(result, "no database at")
    assert not (tmp_path / "nope.db").exists()


def test_help_texts():
    assert "self-contained HTML page" in run("report", "--help").output
    assert "127.0.0.1" in run("dashboard", "--help").output


def test_dashboard_rebuilds_the_page_per_request_on_localhost(tuned_db):
    builds = []
    with Store(f"sqlite:///{tuned_db}") as store:
        server = make_server(lambda: builds.append(1) or build_report(store), port=0)
        host, port = server.server_address
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            assert host == "127.0.0.1"
            for _ in range(2):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60) as response:
                    html = response.read().decode()
                    assert response.headers["Content-Type"].startswith("text/html")
                assert len(script_json(html, "ks-data")["sections"]) == 1
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
            assert missing.value.code == 404
        finally:
            server.shutdown()
            server.server_close()
    assert len(builds) == 2
