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


def test_trace_summary_prints_each_process_and_a_workers_first_fused_config(tmp_path, capsys, monkeypatch):
    import sys

    from benchmarks import trace_summary

    def write(pid, rows):
        with open(tmp_path / f"trace-{pid}.jsonl", "w") as out:
            for t, event, fields in rows:
                out.write(json.dumps({"t": 100.0 + t, "pid": pid, "event": event, **fields}) + "\n")

    write(1, [(0.0, "tune starting", {}), (6.0, "tune: studies queued", {})])
    write(2, [(0.2, "worker starting", {}), (6.1, "study claimed", {"op": "rmsnorm_qkv", "m": 1, "shared": False}),
              (6.9, "compile submitted", {"token": 1}), (6.95, "sent to child", {"token": 0, "arm": "unfused"}),
              (7.5, "compile taken", {"token": 1}), (7.5, "sent to child", {"token": 1, "arm": "fused"}),
              (7.6, "compile submitted", {"token": 2})])
    write(3, [(4.4, "warm start", {}), (5.1, "warm done", {}), (6.9, "compile start", {"op": "rmsnorm_qkv", "m": 1}),
              (7.4, "compile done", {"s": 0.5})])
    write(4, [(4.5, "child ready", {}), (6.95, "child task", {"kind": "trial", "arm": "unfused"})])
    monkeypatch.setattr(sys, "argv", ["trace_summary.py", str(tmp_path)])
    assert trace_summary.main() == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[:4]] == ["tune", "worker", "compile", "child"]
    assert "compile submitted x2" in lines[1] and "  7.40 compile done (s=0.5)" in lines[2]
    assert lines[-1] == ("worker 2: first study claimed at 6.10 s, first compile taken at 7.50 s, first fused "
                         "config sent to the child at 7.50 s")
