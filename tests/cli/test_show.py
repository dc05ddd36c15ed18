"""`kernel-search show`, and the app as a whole: help texts and the console entry point."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.cli.helpers import assert_one_line_error, run
from tests.conftest import child_env
from tests.storage.fill import WINNERS


def cells(line: str) -> list[str]:
    """The cells of one row of a rich table (columns are at least two spaces apart)."""
    return re.split(r"\s{2,}", line.strip())


def test_show_lists_studies_and_failures(filled):
    store, info = filled
    result = run("show", "--wide", "--db", store.url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"{len(WINNERS)} studies, {info.trials} trials, {info.winners} winners (1 without a winner)" in out
    rows = [cells(line) for line in out.splitlines() if line.startswith(" NVIDIA")]
    qkv = [r for r in rows if r[0] == "NVIDIA H100 80GB HBM3" and r[4] == "4096 x 1024" and r[6] == "1"]
    assert qkv == [["NVIDIA H100 80GB HBM3", info.studies[("NVIDIA H100 80GB HBM3", "qwen3-0.6b", "rmsnorm_qkv", 1)]
                    .fingerprint_key, "qwen3-0.6b,qwen3-0.6b-ft", "rmsnorm_qkv", "4096 x 1024", "bfloat16", "1",
                    "8", "4", "3", "1", "4.90", "fused", "4.143"]]
    pending = [r for r in rows if r[3] == "down_residual" and r[6] == "16"]
    assert [r[7:] for r in pending] == [["4", "4", "0", "0", "10.00", "-", "-"]]
    assert "failures by reason (4 trials, 3 reasons)" in out
    assert "invalid config: shared memory estimate # B exceeds the device limit # B" in out


def test_show_filters_and_reason_limit(filled):
    store, _ = filled
    out = run("show", "--model", "qwen3-8b", "--db", store.url).stdout
    assert "2 studies" in out and "no failed or incorrect trials" in out
    out = run("show", "--reasons", "1", "--db", store.url).stdout
    assert "3 reasons, top 1" in out and "CompilationError" not in out
    out = run("show", "--op", "rmsnorm_qkv", "--m-min", "1000", "--db", store.url).stdout
    assert out.startswith("no studies in sqlite:///") and out.strip().endswith("match")


def test_show_errors_are_one_line(filled):
    store, _ = filled
    assert_one_line_error(run("show", "--model", "nope", "--db", store.url), "unknown model 'nope'")
    assert_one_line_error(run("show", "--db", "sqlite:////nonexistent-dir/x.db"), "no database at")


@pytest.mark.parametrize("command", ["export", "import", "query", "show"])
def test_help_texts(command):
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "--db" in result.stdout and "KERNEL_SEARCH_DB" in result.stdout
    top = run("--help").stdout
    assert command in top


def test_console_entry_point_prints_one_line_and_no_traceback(tmp_path):
    # The real process: main(), typer's own exception handling and the exit status.
    env = child_env()
    env.pop("KERNEL_SEARCH_DB", None)
    proc = subprocess.run([sys.executable, "-m", "cli.app", "query", "--db", "sqlite:////nonexistent-dir/x.db"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == "error: no database at sqlite:////nonexistent-dir/x.db (tune or import first, or pass --db)\n"
