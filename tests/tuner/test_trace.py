"""tuner.trace: a process's events as JSON lines in its own file when KERNEL_SEARCH_TRACE names a folder."""

import json
import multiprocessing as mp
import os

from tuner import trace


def _child(folder):
    os.environ[trace.ENV_VAR] = folder
    trace.event("child says", n=2)


def test_events_go_to_one_file_a_process(tmp_path, monkeypatch):
    monkeypatch.setenv(trace.ENV_VAR, str(tmp_path / "t"))
    trace.event("first", op="rmsnorm_qkv", m=1)
    trace.event("second")
    proc = mp.get_context("fork").Process(target=_child, args=(str(tmp_path / "t"),))
    proc.start()
    proc.join(30)
    assert proc.exitcode == 0
    mine = [json.loads(line) for line in (tmp_path / "t" / f"trace-{os.getpid()}.jsonl").read_text().splitlines()]
    assert [(r["event"], r.get("op"), r["pid"]) for r in mine[-2:]] == [("first", "rmsnorm_qkv", os.getpid()),
                                                                         ("second", None, os.getpid())]
    assert mine[-2]["t"] <= mine[-1]["t"]
    theirs = json.loads((tmp_path / "t" / f"trace-{proc.pid}.jsonl").read_text())  # the fork wrote its own file
    assert theirs["event"] == "child says" and theirs["n"] == 2 and theirs["pid"] == proc.pid


def test_nothing_is_written_unless_asked(tmp_path, monkeypatch):
    monkeypatch.delenv(trace.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    trace.event("ignored")
    assert list(tmp_path.iterdir()) == []
