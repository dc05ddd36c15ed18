"""Careless and hostile input to the read commands and to import (issue 14): one line naming the
problem and a non-zero exit, no traceback, and nothing on disk changed that was not asked for."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from kernel_space.spec import Problem
from tests.cli.helpers import assert_one_line_error, run

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "benchmarks" / "results" / "dispatch_qwen3-0.6b_H100.json"
READ_COMMANDS = [["show"], ["query"], ["query", "--beats-cublas"], ["export", "--model", "qwen3-0.6b", "--gpu", "H100"]]


def snapshot(folder: Path) -> dict:
    """Every file in a folder: its hash and mtime (what 'untouched' means here)."""
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.iterdir())}


@pytest.fixture
def db_copy(filled_template, tmp_path):
    """A filled database alone in its folder, closed (no -wal: no writer has it open)."""
    src, info = filled_template
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(src, folder / "ks.db")
    return folder / "ks.db", info


@pytest.mark.parametrize("args", READ_COMMANDS + [["report", "-o", "OUT"]])
def test_read_commands_change_nothing(db_copy, tmp_path, args):
    """Item 6: no WAL switch, no schema, no .lock, -wal or -shm file beside the database."""
    path, _ = db_copy
    before = snapshot(path.parent)
    args = [str(tmp_path / "report.html") if a == "OUT" else a for a in args]
    result = run(*args, "--db", f"sqlite:///{path}")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert snapshot(path.parent) == before


def test_read_commands_see_a_running_tuners_writes(db_copy):
    """With a writer holding the database (its -wal exists), readers read through the WAL."""
    from storage import Store
    from tests.storage.fill import H100

    path, info = db_copy
    with Store(f"sqlite:///{path}") as writer:
        ref = writer.study(H100, Problem("rmsnorm_qkv", 512, 4096, 1024, "bfloat16"), model="qwen3-0.6b")
        writer.set_winner(ref.id, arm="unfused", config={"impl": "unfused"}, median_us=90.0, unfused_us=90.0,
                          cublas_us=80.0, floor_us=40.0, speedup=1.0, speedup_vs_cublas=0.9)
        assert path.with_name("ks.db-wal").exists()
        result = run("query", "-f", "json", "--db", f"sqlite:///{path}")
        assert result.exit_code == 0, result.output
        assert len(json.loads(result.stdout)) == info.winners + 1


def foreign_db(folder: Path) -> Path:
    path = folder / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        conn.execute("INSERT INTO notes (text) VALUES ('keep me')")
    conn.close()
    return path


@pytest.mark.parametrize("args", READ_COMMANDS + [["report", "-o", "OUT"], ["dashboard", "--port", "0"]])
def test_another_applications_database_is_refused_untouched(tmp_path, args):
    """Item 6: `show` on another application's SQLite file added 7 ks_ tables and switched it to WAL."""
    folder = tmp_path / "app"
    folder.mkdir()
    path = foreign_db(folder)
    before = snapshot(folder)
    args = [str(tmp_path / "report.html") if a == "OUT" else a for a in args]
    assert_one_line_error(run(*args, "--db", f"sqlite:///{path}"), "is not a kernel-search database", "notes")
    assert snapshot(folder) == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


@pytest.mark.parametrize(("content", "words"), [
    (b"", ["is not a kernel-search database", "empty"]),
    (b"hello, not a database\n" * 100, ["file is not a database"]),
])
def test_files_that_are_not_databases(tmp_path, content, words):
    path = tmp_path / "x.db"
    path.write_bytes(content)
    before = snapshot(tmp_path)
    for args in (["show"], ["query"], ["report", "-o", str(tmp_path / "r.html")], ["export", "--model", "x"]):
        assert_one_line_error(run(*args, "--db", f"sqlite:///{path}"), *words)
    assert snapshot(tmp_path) == before


def test_import_refuses_another_applications_database(tmp_path):
    path = foreign_db(tmp_path)
    before = snapshot(tmp_path)
    assert_one_line_error(run("import", COMMITTED, "--db", f"sqlite:///{path}"), "another application's database")
    assert snapshot(tmp_path) == before


def test_a_folder_as_database(tmp_path):
    assert_one_line_error(run("show", "--db", f"sqlite:///{tmp_path}"), "not a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder anyway")
def test_read_only_folder(db_copy, tmp_path):
    path, _ = db_copy
    path.parent.chmod(0o555)
    try:
        for args in (["show"], ["query"], ["report", "-o", str(tmp_path / "r.html")]):
            assert run(*args, "--db", f"sqlite:///{path}").exit_code == 0
    finally:
        path.parent.chmod(0o755)


def test_query_and_show_fit_100_columns(db_copy):
    """Item 1: at 100 columns nothing is cut ('o_p…', '1.8…') and rows are not wrapped."""
    path, _ = db_copy
    for command in ("query", "show"):
        result = run(command, "--db", f"sqlite:///{path}", env={"COLUMNS": "100"})
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert max(len(line) for line in lines) <= 100, "\n".join(lines)
        assert "…" not in result.stdout
    query = run("query", "--db", f"sqlite:///{path}", env={"COLUMNS": "100"}).stdout
    row = next(line for line in query.splitlines() if line.split()[:2] == ["rmsnorm_gate_up_silu", "1"])
    assert row.split()[2:] == ["fused", "7.00", "25.30", "7.30", "4.20", "3.614", "1.043"]
    wide = run("query", "--wide", "--db", f"sqlite:///{path}", env={"COLUMNS": "100"}).stdout
    assert "16x64x256 path=dot SPLIT_K=4" in wide and "…" not in wide


def test_unknown_filters_are_errors(db_copy):
    """Item 9: `--op nope` was an empty answer with exit 0 while `--model nope` was an error."""
    url = f"sqlite:///{db_copy[0]}"
    for command in ("query", "show"):
        assert_one_line_error(run(command, "--op", "nope", "--db", url), "unknown op 'nope'", "rmsnorm_qkv")
        assert_one_line_error(run(command, "--gpu", "A100", "--db", url), "no GPU matches 'A100'", "H200")
        assert_one_line_error(run(command, "--m-min", "8", "--m-max", "2", "--db", url), "--m-min 8 is above")
    assert_one_line_error(run("query", "--min-speedup", "nan", "--db", url), "--min-speedup")


def hostile_table(tmp_path: Path, edit) -> Path:
    data = json.loads(COMMITTED.read_text())
    edit(data)
    path = tmp_path / "table.json"
    path.write_text(json.dumps(data))  # json.dumps writes Infinity and NaN as Python reads them
    return path


def bucket(d, **values):
    d["ops"]["o_proj_residual"]["buckets"][0].update(values)


@pytest.mark.parametrize(("edit", "words"), [
    (lambda d: bucket(d, median_us=float("inf")), ["Infinity is not a number"]),
    (lambda d: bucket(d, speedup=float("nan")), ["NaN is not a number"]),
    (lambda d: bucket(d, median_us=-5.0), ["buckets[0].median_us", "finite number"]),
    (lambda d: bucket(d, m=10**30), ["buckets[0].m", "must be in"]),
    (lambda d: d["ops"].update(attention=d["ops"].pop("o_proj_residual")), ["unknown op 'attention'"]),
    (lambda d: d["ops"]["o_proj_residual"]["buckets"][0]["config"].update(num_warps=3), ["num_warps=3"]),
    (lambda d: d["ops"]["o_proj_residual"]["buckets"][0]["config"].update(
        path="dot", BLOCK_M=16, BLOCK_N=256, BLOCK_K=1024, SPLIT_K=1, split_reduce="kernel", num_stages=5),
     ["cannot run", "shared memory"]),
    (lambda d: d.update(model="<script>alert(1)</script>" * 20), ["model", "longer than"]),
])
def test_import_refuses_bad_tables_and_changes_nothing(tmp_path, edit, words):
    """Item 3: Infinity was imported, after which report, dashboard and export failed."""
    db = tmp_path / "ks.db"
    result = run("import", hostile_table(tmp_path, edit), "--db", f"sqlite:///{db}")
    assert_one_line_error(result, *words)


@pytest.mark.parametrize(("text", "words"), [
    ("[" * 100_000 + "]" * 100_000, ["nests deeper than 32"]),
    ('{"format": ' + "1" * 10_000 + "}", ["not a valid table"]),
    ("{", ["is not JSON"]),
])
def test_import_refuses_hostile_json(tmp_path, text, words):
    path = tmp_path / "table.json"
    path.write_text(text)
    assert_one_line_error(run("import", path, "--db", f"sqlite:///{tmp_path / 'ks.db'}"), *words)


def test_imported_committed_table_answers_beats_cublas(tmp_path):
    """Item 7: the committed tables carry cuBLAS times, so an import answers --beats-cublas; a table
    without them says why in one line."""
    url = f"sqlite:///{tmp_path / 'ks.db'}"
    assert run("import", COMMITTED, "--db", url).exit_code == 0
    rows = json.loads(run("query", "--beats-cublas", "-f", "json", "--db", url).stdout)
    assert rows and all(r["speedup_vs_cublas"] > 1 and r["arm"] == "fused" for r in rows)
    assert {r["op"] for r in rows} >= {"o_proj_residual", "down_residual"}

    def strip(d):
        for entry in d["ops"].values():
            for b in entry["buckets"]:
                b.pop("cublas_us", None), b.pop("floor_us", None)  # decode attention has no cuBLAS time
        d["model"] = "old-table"

    other = f"sqlite:///{tmp_path / 'old.db'}"
    assert run("import", hostile_table(tmp_path, strip), "--db", other).exit_code == 0
    result = run("query", "--beats-cublas", "--db", other)
    assert result.exit_code == 0 and result.stdout == ""
    assert re.search(r"\d+ of \d+ fused winners have no cuBLAS time", result.stderr)
    assert len(result.stderr.splitlines()) == 2  # "no winners match" and why


def test_import_of_a_missing_or_odd_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'ks.db'}"
    assert_one_line_error(run("import", tmp_path / "nope.json", "--db", url), "no such file")
    assert_one_line_error(run("import", "/dev/null", "--db", url), "not a regular file")
    assert_one_line_error(run("import", tmp_path, "--db", url), "a folder")
    binary = tmp_path / "x.json"
    binary.write_bytes(bytes(range(256)))
    assert_one_line_error(run("import", binary, "--db", url), "not UTF-8")
    assert not (tmp_path / "ks.db").exists()


def test_outputs_that_cannot_be_written_are_named(db_copy, tmp_path):
    url = f"sqlite:///{db_copy[0]}"
    assert_one_line_error(run("report", "-o", tmp_path, "--db", url), f"cannot write {str(tmp_path)!r}")
    assert_one_line_error(run("export", "--model", "qwen3-8b", "-o", tmp_path / "no" / "t.json", "--db", url),
                          "cannot write", "No such file or directory")
    assert_one_line_error(run("import", COMMITTED, "--db", f"sqlite:///{tmp_path / 'no' / 'ks.db'}"),
                          "no folder", "for the database")


def test_a_table_with_a_byte_order_mark_imports(tmp_path):
    """Editors on Windows save UTF-8 with a BOM; it is not part of the JSON."""
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + COMMITTED.read_bytes())
    result = run("import", path, "--db", f"sqlite:///{tmp_path / 'ks.db'}")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("columns", ["abc", "0", "-5", "99999999"])
def test_odd_terminal_widths(db_copy, columns):
    result = run("query", "--db", f"sqlite:///{db_copy[0]}", env={"COLUMNS": columns})
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output


def test_beats_cublas_says_which_winners_it_could_not_judge(tmp_path):
    def strip_one(d):
        bucket = d["ops"]["o_proj_residual"]["buckets"][0]
        del bucket["cublas_us"], bucket["floor_us"]

    url = f"sqlite:///{tmp_path / 'ks.db'}"
    assert run("import", hostile_table(tmp_path, strip_one), "--db", url).exit_code == 0
    result = run("query", "--beats-cublas", "-f", "csv", "--db", url)
    assert result.exit_code == 0 and len(result.stdout.splitlines()) > 1
    assert re.fullmatch(r"1 of \d+ fused winners have no cuBLAS time .*not in this answer\n", result.stderr)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed one, on purpose
def test_a_ctrl_c_swallowed_by_a_garbage_collection_callback_is_not_lost():
    """A KeyboardInterrupt raised inside a weakref callback is printed as "Exception ignored" and
    dropped (CI saw a tune run on to its end that way); under ctrl_c_kept the command's next safe point
    raises it again."""
    import gc
    import signal
    import weakref

    from cli.common import ctrl_c_kept

    class Thing:
        pass

    def interrupted_inside(ref):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100_000):  # the handler runs here, inside the callback
            pass

    def swallow_one():
        thing = Thing()
        keep = weakref.ref(thing, interrupted_inside)
        del thing
        gc.collect()
        return keep

    with ctrl_c_kept() as check:
        swallow_one()  # raises nothing: the interrupt is lost in the callback
        with pytest.raises(KeyboardInterrupt):
            check()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("args", [["tune", "--model", "qwen3-tiny", "--seconds", "nan"],
                                  ["tune", "--model", "qwen3-tiny", "--seconds", "inf"],
                                  ["worker", "--wait", "nan"], ["worker", "--seconds", "nan"]])
def test_float_options_refuse_nan_and_infinity(args, tmp_path):
    """Click's range checks compare, and whether NaN fails them depends on click's version (typer vendors
    one on the GPU image, where --temperature nan reached CUDA's sampler): cli.common.finite refuses them
    itself, as usage errors naming the option, before anything runs (query's --min-speedup is checked by the
    command: test_unknown_filters_are_errors)."""
    result = run(*args, "--db", f"sqlite:///{tmp_path / 'ks.db'}")
    assert result.exit_code == 2 and "Traceback" not in result.output
    # the range check or the callback refuses it, whichever click runs first
    assert f"Invalid value for '{args[-2]}'" in result.output
    assert not (tmp_path / "ks.db").exists()


def test_the_finite_callback_itself():
    import typer

    from cli.common import finite

    assert finite(None) is None and finite(2.5) == 2.5
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(typer.BadParameter, match="not a finite number"):
            finite(bad)
