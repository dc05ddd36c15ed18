"""Run one of this folder's ahead-of-time compile scripts (aot_*.py: kernels compiled for sm_90 with
Triton's own compiler, no GPU) in a process without TRITON_INTERPRET, and return the JSON it prints last."""

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import child_env

ROOT = Path(__file__).resolve().parents[2]


def aot_report(script: str, *args: str):
    env = child_env("TRITON_INTERPRET")
    out = subprocess.run([sys.executable, str(ROOT / "tests/kernel_space" / script), *args], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
