"""Running the app in-process, with the environment cleared of a real database URL."""

from __future__ import annotations

from typer.testing import CliRunner

from cli.app import app


def run(*args: str, env: dict | None = None):
    """Invoke kernel-search with args; KERNEL_SEARCH_DB is unset unless env sets it."""
    runner = CliRunner(env={"KERNEL_SEARCH_DB": None, "COLUMNS": "250", **(env or {})})
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, *words: str) -> None:
    """Exit status 1, nothing on stdout, one 'error: ...' line on stderr holding `words`."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]
