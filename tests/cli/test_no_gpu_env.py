"""The commands set Triton's interpreter up themselves on a machine without a GPU: a user's shell has
no TRITON_INTERPRET (the test session sets it, which hid a command that imported the kernels first)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import child_env

ROOT = Path(__file__).resolve().parents[2]


def _run(*args, cwd):
    env = child_env("TRITON_INTERPRET")
    return subprocess.run([sys.executable, "-m", "cli.app", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter is only for machines without a GPU")
def test_check_tune_and_worker_run_without_triton_interpret_in_the_environment(tmp_path):
    check = _run("check", "--ms", "1", "--op", "o_proj_residual", "--configs", "1", cwd=tmp_path)
    assert check.returncode == 0 and "all 1 checks passed" in check.stdout, check.stdout + check.stderr
    db = f"sqlite:///{tmp_path / 'ks.db'}"
    tune = _run("tune", "--model", "qwen3-tiny", "--op", "o_proj_residual", "--buckets", "1", "--trials", "2",
                "--db", db, cwd=tmp_path)
    assert tune.returncode == 0 and "tuned 1 studies" in tune.stdout, tune.stdout + tune.stderr
    worker = _run("worker", "--db", db, cwd=tmp_path)
    assert worker.returncode == 0 and "worker done" in worker.stderr, worker.stderr
    # tune --gpus starts its workers so: their log is whole, and the exit status says they finished
    worker = _run("worker", "--db", db, "--exit-at-once", cwd=tmp_path)
    assert worker.returncode == 0 and "worker done" in worker.stderr, worker.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter is only for machines without a GPU")
def test_a_worker_that_sees_a_gpu_cuda_cannot_use_goes_on_in_the_interpreter(tmp_path):
    """NVML counts a GPU, CUDA cannot open it: the worker has started its benchmarking child and compile
    processes from the fork server (kernels imported for the GPU), ends them, and goes on in Triton's
    interpreter with processes of that mode, as it says."""
    db = f"sqlite:///{tmp_path / 'ks.db'}"
    tune = _run("tune", "--model", "qwen3-tiny", "--op", "o_proj_residual", "--buckets", "1", "--trials", "2",
                "--db", db, cwd=tmp_path)
    assert tune.returncode == 0, tune.stdout + tune.stderr
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import tuner.launch\ntuner.launch.visible_gpu_count = lambda: 1\n")
    env = child_env("TRITON_INTERPRET")
    env["PYTHONPATH"] = f"{site}{os.pathsep}{env['PYTHONPATH']}"  # its sitecustomize first
    worker = subprocess.run([sys.executable, "-m", "cli.app", "worker", "--db", db], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=600)
    assert worker.returncode == 0, worker.stderr
    assert "worker on the CPU (Triton's interpreter)" in worker.stderr and "worker done" in worker.stderr
