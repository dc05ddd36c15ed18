"""The report in headless Chromium: every plot drawn, no JavaScript error, a screenshot kept.

CI (.ci/run) installs Debian's chromium; a machine without it skips with the reason. The page
reports on itself (see dashboards.page): <html data-ks-status="rendered" data-ks-plots="N"> once
every Plotly.newPlot has resolved, data-ks-status="error" and <pre id="ks-errors"> otherwise.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli.helpers import run
from tests.dashboards.conftest import REPO
from tests.dashboards.helpers import script_json

ARTIFACTS = REPO / "artifacts" / "dashboards"  # git-ignored


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    """Run headless Chromium offline with a throwaway profile; virtual time lets the page finish."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("chromium is not installed (.ci/run installs it: apt-get install -y chromium)")
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=30000", *args],
        capture_output=True, text=True, timeout=180,
    )


@pytest.fixture(scope="module")
def two_gpu_page(two_gpu_db, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "report.html"
    result = run("report", "--db", f"sqlite:///{two_gpu_db}", "-o", out)
    assert result.exit_code == 0, result.output
    return out


def test_every_plot_renders_without_javascript_errors(two_gpu_page, tmp_path):
    done = chromium("--dump-dom", two_gpu_page.as_uri(), profile=tmp_path / "profile")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    root = re.search(r"<html[^>]*>", dom)
    assert root, dom[:500]
    errors = re.search(r'<pre id="ks-errors">(.*?)</pre>', dom, re.S)
    assert errors and errors.group(1).strip() == "", errors.group(1) if errors else dom[-2000:]
    assert 'data-ks-status="rendered"' in root.group(0), root.group(0)
    figures = script_json(two_gpu_page.read_text(), "ks-figures")
    assert f'data-ks-plots="{len(figures)}"' in root.group(0)
    assert dom.count('class="main-svg"') >= len(figures)  # plotly drew an SVG in every plot div
    assert "Uncaught" not in done.stderr, done.stderr[-2000:]


def test_screenshot(two_gpu_page, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report_two_gpus.png"
    shot.unlink(missing_ok=True)
    done = chromium(f"--screenshot={shot}", "--window-size=1400,2000", "--hide-scrollbars", two_gpu_page.as_uri(),
                    profile=tmp_path / "profile")
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
