"""The end-to-end check as a user meets it: tune runs it (or says in one line why not), query, show and
report show it within 100 columns, export applies it. The GPU measurement is replaced by made-up step
times (tuner.step_bench.measure); the tuning itself by a stand-in that stores winners."""

from __future__ import annotations

import json
import os

import pytest
import torch

import tuner.step_bench as step_bench
from storage.export import build_table
from storage.steps import StepRow, record_run
from storage.table import load_table
from tests.cli.helpers import assert_one_line_error, run
from tests.conftest import requires_gpu
from tests.dashboards.helpers import script_json
from tests.storage.fill import H100

MODEL = "qwen3-0.6b"


def check(store) -> int:
    """A stored check of the filled database's 0.6B table: it wins at M = 1, loses to unfused at 16."""
    table = build_table(store, MODEL, "H100")
    return record_run(store, H100, MODEL, "bfloat16", table, None, 128, 32,
                      [StepRow("unfused", 1, 1.7, 588.2, 9.0), StepRow("table", 1, 0.94, 1063.8, 9.1),
                       StepRow("unfused", 16, 2.0, 8000.0, 12.0), StepRow("table", 16, 2.1, 7619.0, 12.2)])


def step_lines(out: str) -> list[str]:
    start = out.index("end to end (decode tok/s")
    return out[start:].splitlines()


@pytest.mark.parametrize("command", [["query"], ["show"], ["query", "--model", MODEL, "--m-max", "8"]])
def test_query_and_show_print_the_check_within_100_columns(filled, command):
    store, _ = filled
    check(store)
    result = run(*command, "--db", store.url, env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 100
    lines = step_lines(result.stdout)
    assert lines[0] == f"end to end (decode tok/s, CUDA graph): {MODEL} (bfloat16) on NVIDIA H100 80GB HBM3 " \
                       f"[{store_key()}]"
    assert "(export applies this check), context 128, measured " in lines[1]
    rows = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert rows[0] == ["1", "588", "1,064", "1.81x", "table"]
    if "--m-max" in command:
        assert len(rows) == 1
    else:
        assert rows[1] == ["16", "8,000", "7,619", "0.95x", "unfused"]


def store_key() -> str:
    from storage.store import fingerprint_key

    return fingerprint_key(H100)


def test_csv_and_json_keep_their_winner_rows_only(filled):
    store, info = filled
    check(store)
    rows = json.loads(run("query", "-f", "json", "--db", store.url).stdout)
    assert len(rows) == info.winners


def test_export_applies_the_check_and_says_so(filled, tmp_path):
    store, _ = filled
    check(store)
    result = run("export", "--model", MODEL, "--gpu", "H100", "-o", tmp_path / "t.json", "--db", store.url)
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "t.json").read_text())
    assert doc["ops"]["rmsnorm_qkv"]["buckets"][1]["m"] == 16
    assert doc["ops"]["rmsnorm_qkv"]["buckets"][1]["arm"] == "unfused"
    assert doc["step_check"]["replaced"] == {"16": ["rmsnorm_qkv"]}
    assert "batch 16: the unfused step is faster (2.000 ms vs 2.100 ms with the new table): export writes the " \
           "unfused path at M=16 for 1 op (rmsnorm_qkv)" in result.stderr
    raw = run("export", "--model", MODEL, "--gpu", "H100", "--per-op", "-o", tmp_path / "r.json", "--db", store.url)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert "step_check" not in doc and doc["ops"]["rmsnorm_qkv"]["buckets"][1]["arm"] == "fused"
    assert "not applied (--per-op)" in raw.stderr
    assert run("import", tmp_path / "t.json", "--db", f"sqlite:///{tmp_path / 'other.db'}").exit_code == 0


def test_report_shows_the_check_in_its_section(filled, tmp_path):
    pytest.importorskip("plotly")  # the report's figures (an extra the GPU image lacks)
    store, _ = filled
    run_id = check(store)
    out = tmp_path / "report.html"
    assert run("report", "--db", store.url, "-o", out).exit_code == 0
    html = out.read_text()
    section = next(s for s in script_json(html, "ks-data")["sections"]
                   if s["model"] == MODEL and s["gpu"] == "NVIDIA H100 80GB HBM3")
    assert [(r["batch"], r["ships"], r["run_id"]) for r in section["steps"]] == [(1, "table", run_id),
                                                                                  (16, "unfused", run_id)]
    assert section["steps"][0]["table_tok_s"] == 1063.8 and section["steps"][0]["current"] is True
    assert f'data-run="{run_id}"' in html and "<td>1,064</td>" in html.replace(' class=""', "")
    others = [s for s in script_json(html, "ks-data")["sections"] if s["model"] != MODEL]
    assert all(s["steps"] == [] for s in others)


def test_report_shows_the_stream_each_batch_ships_with(filled, tmp_path):
    pytest.importorskip("plotly")
    store, _ = filled
    table = build_table(store, MODEL, "H100")
    record_run(store, H100, MODEL, "bfloat16", table, None, 128, 32,
               [StepRow("unfused", 1, 1.7, 588.2), StepRow("table", 1, 0.94, 1063.8),
                StepRow("fixed_stream", 1, 0.9, 1111.1), StepRow("unfused", 16, 2.0, 8000.0),
                StepRow("table", 16, 1.5, 10666.7), StepRow("fixed_stream", 16, 1.6, 10000.0)])
    out = tmp_path / "report.html"
    assert run("report", "--db", store.url, "-o", out).exit_code == 0
    html = out.read_text().replace(' class=""', "").replace(' class="l"', "")
    section = next(s for s in script_json(html, "ks-data")["sections"]
                   if s["model"] == MODEL and s["gpu"] == "NVIDIA H100 80GB HBM3")
    assert [(r["batch"], r["ships"], r["stream"], r["fixed_stream_tok_s"]) for r in section["steps"]] == [
        (1, "table", "fixed", 1111.1), (16, "table", "model", 10000.0)]
    assert "<th>fixed_stream tok/s</th>" in html and "<th>stream</th>" in html
    assert "<td>table</td><td>fixed</td>" in html and "<td>table</td><td>model</td>" in html


# ---- tune -------------------------------------------------------------------------------------


def fake_tune(store_winner: bool):
    """A tune_model stand-in: one study of qwen3-tiny's down_residual at M = 1, with a fused winner
    stored (store_winner) so that there is a table to check."""
    from kernel_space import get_op
    from kernel_space.fingerprint import current_fingerprint
    from kernel_space.spec import Problem
    from tests.storage.fill import FUSED
    from tuner.search import StudyOutcome
    from tuner.tune import TuneReport

    def tune_model(store, config, ops, buckets, dtype, opts, seconds, on_study, on_trial, on_done, contexts):
        outcome = StudyOutcome("down_residual", 1, trials=3, new_trials=3, failed=0, winner_arm="fused",
                               winner_config=FUSED, median_us=5.0, unfused_us=9.0, speedup=1.8)
        if store_winner:
            n, k = get_op("down_residual").shape(config.dims())
            ref = store.study(current_fingerprint(), Problem("down_residual", 1, n, k, dtype), config.name)
            store.set_winner(ref.id, arm="fused", config=FUSED, median_us=5.0, unfused_us=9.0, cublas_us=None,
                             floor_us=None, speedup=1.8, speedup_vs_cublas=None)
        on_done(outcome)
        return TuneReport(config.name, {}, [outcome], [], 1.0)

    return tune_model


@pytest.mark.parametrize(("extra", "reason"), [
    pytest.param([], "no CUDA GPU here, and the decode step is timed on a GPU only (CUDA graphs)",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")),
    (["--no-bench"], "--no-bench"),
])
def test_tune_without_a_gpu_or_with_no_bench_says_why_in_one_line(monkeypatch, tmp_path, extra, reason):
    import tuner.tune

    monkeypatch.setattr(tuner.tune, "tune_model", fake_tune(False))
    monkeypatch.setattr(step_bench, "measure", lambda *a, **k: pytest.fail("measured without a GPU"))
    result = run("tune", "--model", "qwen3-tiny", "--buckets", "1", *extra, "--db",
                 f"sqlite:///{tmp_path / 'ks.db'}")
    assert result.exit_code == 0, result.output
    skipped = [line for line in result.stdout.splitlines() if "end-to-end" in line]
    assert skipped == [f"end-to-end check skipped: {reason}; export writes the per-op winners as they are"]


def test_tune_on_a_gpu_checks_the_table_and_prints_what_ships(monkeypatch, tmp_path):
    import torch

    import cli.tune
    import tuner.tune

    monkeypatch.setattr(tuner.tune, "tune_model", fake_tune(True))
    monkeypatch.setattr(cli.tune, "interpreter_needed", lambda: False)  # as on a GPU machine
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 80GB HBM3")
    calls = []

    def measure(config, arms, batches, dtype, progress=None, arm_batches=None):
        calls.append(([arm for arm, _ in arms], batches, dtype, arm_batches))
        steps = {"unfused": {1: 1.0, 4: 2.0}, "table": {1: 0.8, 4: 2.2}, "fixed_stream": {1: 0.7, 4: 2.3},
                 "fold": {1: 0.68}, "fold_fixed": {1: 0.66}}
        return [StepRow(arm, b, steps[arm][b], b * 1000 / steps[arm][b], 5.0) for arm, _ in arms
                for b in (arm_batches or {}).get(arm, batches)]

    monkeypatch.setattr(step_bench, "measure", measure)
    db = f"sqlite:///{tmp_path / 'ks.db'}"
    result = run("tune", "--model", "qwen3-tiny", "--buckets", "1,4,512", "--db", db, env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    # The decode buckets only; the fold at batch 1 only.
    assert calls == [(["unfused", "table", "fixed_stream", "fold", "fold_fixed"], [1, 4], "bfloat16",
                      {"fold": [1], "fold_fixed": [1]})]
    out = result.stdout
    lines = step_lines(out)
    section = lines[:next(i for i, line in enumerate(lines) if line.startswith("batch 4:"))]  # heading, table
    assert max(len(line) for line in section) <= 100
    rows = [line.split() for line in section if line.strip()[:1].isdigit()]
    # The table at batch 1 with its fastest variant (fixed point and the fold: 0.66 ms), at 4 the unfused path.
    assert rows == [["1", "1,000", "1,250", "1,429", "1,515", "1.52x", "table,", "fixed", "stream,", "fold"],
                    ["4", "2,000", "1,818", "1,739", "-", "0.91x", "unfused"]]
    assert "batch 4: the unfused step is faster (2.000 ms vs 2.200 ms with the new table): no bucket at M=4 " \
           "differs from the unfused path" in out
    assert "residual stream of the new table: fixed point at batch 1 (0.660 vs 0.680 ms, fixed vs model); the " \
           "model dtype at batch 4 (2.300 vs 2.200 ms, fixed vs model)" in out
    assert "decode attention's combine folded into o_proj at batch 1: yes (0.660 ms folded vs 0.700 ms not)" in out
    assert "no previous arm: no table for this GPU before this tune" in out
    assert out.rstrip().splitlines()[-1].startswith("next: kernel-search export --model qwen3-tiny")
    shown = run("show", "--db", db, env={"COLUMNS": "100"}).stdout
    assert [line.split() for line in step_lines(shown) if line.strip()[:1].isdigit()][:2] == rows
    # export writes the stream each batch ships with: fixed point at 1, the unfused path's (model) at 4.
    out_file = tmp_path / "table.json"
    result = run("export", "--model", "qwen3-tiny", "--db", db, "-o", str(out_file))
    assert result.exit_code == 0, result.output
    data = json.loads(out_file.read_text())
    assert data["stream"] == [{"batch": 1, "stream": "fixed"}, {"batch": 4, "stream": "model"}]
    assert [(b["batch"], b["ships"], b["stream"]) for b in data["step_check"]["batches"]] == \
        [(1, "table", "fixed"), (4, "unfused", "model")]
    assert load_table(out_file).stream_at(1) == "fixed" and load_table(out_file).stream_at(2) == "model"
    assert data["fold"] == [1] and load_table(out_file).folds_at(1)


def test_the_check_times_no_fold_where_the_model_runs_sdpa(monkeypatch, tmp_path):
    """A model whose heads the attention kernels cannot take (head_dim 80) runs PyTorch's attention: it leaves
    no combine for o_proj to fold, so the check has no fold arms (an H200 run timed them, a tie of two
    identical steps, and the table shipped a fold that did nothing)."""
    import torch

    import cli.tune
    import tuner.tune
    from qwen3.config import PRESETS

    path = tmp_path / "hd80.json"
    path.write_text(json.dumps({**PRESETS["qwen3-tiny"].to_hf_dict(), "head_dim": 80}))
    monkeypatch.setattr(tuner.tune, "tune_model", fake_tune(True))
    monkeypatch.setattr(cli.tune, "interpreter_needed", lambda: False)  # as on a GPU machine
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 80GB HBM3")
    calls = []

    def measure(config, arms, batches, dtype, progress=None, arm_batches=None):
        calls.append([arm for arm, _ in arms])
        return [StepRow(arm, b, 1.0, b * 1000.0, 5.0) for arm, _ in arms for b in (arm_batches or {}).get(arm, batches)]

    monkeypatch.setattr(step_bench, "measure", measure)
    db = f"sqlite:///{tmp_path / 'ks.db'}"
    result = run("tune", "--model", path, "--buckets", "1", "--db", db, env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert calls == [["unfused", "table", "fixed_stream"]]
    assert "decode_attention left out: hd80's head_dim 80" in result.stderr
    assert "folded" not in result.stdout
    out_file = tmp_path / "table.json"
    assert run("export", "--model", path, "--db", db, "-o", str(out_file)).exit_code == 0
    assert "fold" not in json.loads(out_file.read_text()) and not load_table(out_file).folds_at(1)


def test_bench_batches_must_be_tuned_decode_buckets(tmp_path):
    db = tmp_path / "ks.db"
    for value, words in (("3", ["--bench-batches 3 is not a decode bucket this tune covers", "1, 4"]),
                         ("512", ["--bench-batches 512 is not a decode bucket"]),
                         ("x", ["--bench-batches must be a comma list of ints"])):
        result = run("tune", "--model", "qwen3-tiny", "--buckets", "1,4,512", "--bench-batches", value,
                     "--db", f"sqlite:///{db}")
        assert_one_line_error(result, *words)
    assert not db.exists()


def test_tune_on_several_gpus_checks_once_on_the_first_gpu_named(monkeypatch, tmp_path):
    import cli.step_check
    import cli.tune
    import tuner.distributed as distributed
    import tuner.launch as launch

    fps = {2: {**H100, "driver": "two"}, 3: {**H100, "driver": "three"}}
    monkeypatch.setattr(cli.tune, "interpreter_needed", lambda: False)
    monkeypatch.setattr(launch, "visible_gpu_count", lambda: 4)
    monkeypatch.setattr(distributed, "gpu_fingerprints", lambda gpus: fps)
    events = []  # the workers start first of all, waiting for the database and the plan that follow
    monkeypatch.setattr(cli.tune, "interpreter_needed", lambda: events.append("imports") or False)
    plans = []
    monkeypatch.setattr(distributed, "plan", lambda *a, plan_id=None: events.append("plan") or plans.append(plan_id)
                        or [7])
    monkeypatch.setattr(launch, "spawn_workers", lambda url, gpus, batch, seed, seconds, logs, wait_s=0, plan=None:
                        events.append(("spawn", gpus, wait_s, logs)) or plans.append(plan) or [])
    monkeypatch.setattr(distributed, "study_progress", lambda store, ids: (1, 5))
    checks = []
    monkeypatch.setattr(cli.step_check, "run_check", lambda store, config, dtype, fp, previous, batches, device=None:
                        checks.append((config.name, dtype, fp, previous, batches, device)))
    db = f"sqlite:///{tmp_path / 'ks.db'}"
    result = run("tune", "--model", "qwen3-tiny", "--buckets", "1,8", "--gpus", "2,3", "--db", db)
    assert result.exit_code == 0, result.output
    assert checks == [("qwen3-tiny", "bfloat16", fps[2], None, [1, 8], 2)]
    assert events[0][:2] == ("spawn", [2, 3]) and events[0][2] > 0 and events[1:] == ["imports", "plan"]
    # The workers get the plan, and queue their GPU kind's studies themselves, under the tune's run id.
    spec = cli.tune.PlanSpec.from_json(plans[0])
    assert (spec.model, spec.buckets, spec.dtype, spec.trials, spec.ops) == ("qwen3-tiny", "1,8", "bfloat16", 40, [])
    assert plans[1] == spec.id
    assert not os.path.isdir(events[0][3])  # the default log folder is temporary
    result = run("tune", "--model", "qwen3-tiny", "--buckets", "1,8", "--gpus", "2,3", "--no-bench", "--db", db)
    assert len(checks) == 1 and "end-to-end check skipped: --no-bench;" in result.stdout
    # --worker-logs: the workers write into that folder (made if missing), and it stays, with the tune's own.
    logs = tmp_path / "logs" / "run1"
    result = run("tune", "--model", "qwen3-tiny", "--buckets", "1,8", "--gpus", "2,3", "--no-bench",
                 "--worker-logs", str(logs), "--db", db)
    assert result.exit_code == 0, result.output
    assert events[-3] == ("spawn", [2, 3], events[0][2], str(logs)) and (logs / "tune.log").is_file()
    assert "36 studies queued" not in (logs / "tune.log").read_text() and "1 studies queued" in \
        (logs / "tune.log").read_text()
    # A bad option after the workers started: they are stopped, and no database is made.
    other = tmp_path / "other.db"
    result = run("tune", "--model", "qwen3-tiny", "--buckets", "1,8", "--dtype", "int3", "--gpus", "2,3",
                 "--db", f"sqlite:///{other}")
    assert_one_line_error(result, "unknown dtype 'int3'")
    assert events[-2][0] == "spawn" and events[-1] == "imports" and not other.exists()


def test_worker_logs_need_several_gpus(tmp_path):
    db = tmp_path / "ks.db"
    result = run("tune", "--model", "qwen3-tiny", "--worker-logs", str(tmp_path / "logs"), "--db", f"sqlite:///{db}")
    assert_one_line_error(result, "--worker-logs goes with --gpus")
    assert not db.exists() and not (tmp_path / "logs").exists()


@requires_gpu
@pytest.mark.timeout(900)
def test_tune_on_the_gpu_times_the_step_and_stores_it(tmp_path):
    """The real check: a short tune of the tiny preset, then its decode step in CUDA graphs."""
    from storage import Store
    from storage.queries import steps_frame

    db = f"sqlite:///{tmp_path / 'ks.db'}"
    result = run("tune", "--model", "qwen3-tiny", "--buckets", "1,4", "--trials", "4", "--db", db,
                 env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "end to end (decode tok/s, CUDA graph): qwen3-tiny (bfloat16)" in result.stdout
    with Store(db, readonly=True) as store:
        frame = steps_frame(store)
    assert list(frame["batch"]) == [1, 4] and frame["current"].all()
    for arm in ("unfused", "table"):
        assert (frame[f"{arm}_step_ms"] > 0).all() and (frame[f"{arm}_tok_s"] > 0).all()
    assert frame["previous_tok_s"].isna().all()


def test_export_writes_the_default_plan_where_the_check_found_it_faster(tmp_path):
    from storage import Store
    from storage.export import import_table
    from storage.steps import AttentionRow
    from tests.storage.test_attention_table import bucket, table

    url = f"sqlite:///{tmp_path / 'attn.db'}"
    with Store(url) as store:
        import_table(store, table([bucket(1, 4096), bucket(1, 32768)]))
        built = build_table(store, MODEL, "H100")
        record_run(store, H100, MODEL, "bfloat16", built, None, 128, 32,
                   [StepRow("unfused", 1, 1.7, 588.2, 9.0), StepRow("table", 1, 0.94, 1063.8, 9.1)],
                   [AttentionRow(1, 4096, 2048, 1.0, 1.1), AttentionRow(1, 32768, 11585, 1.0, 0.9)])
    result = run("export", "--model", MODEL, "--gpu", "H100", "-o", tmp_path / "t.json", "--db", url)
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "t.json").read_text())
    assert [(b["context"], b["arm"]) for b in doc["ops"]["decode_attention"]["buckets"]] == [(4096, "fused"),
                                                                                             (32768, "plan")]
    assert doc["step_check"]["replaced"] == {"1": ["decode_attention ctx=32768"]}
    assert "decode attention: the table's tuned config ships at 1 of 2 buckets measured in the step" in result.stderr
    assert "M=1 ctx=32768: the default plan's step is faster over a cache of 11585 slots (0.900 ms vs 1.000 ms " \
           "with the tuned config): export writes the plan there" in result.stderr
    imported = run("import", tmp_path / "t.json", "--db", f"sqlite:///{tmp_path / 'other.db'}")
    assert imported.exit_code == 0, imported.output
    assert "1 decode attention bucket on the default plan not imported" in imported.stdout + imported.stderr
