"""A config that fails to compile, computes a wrong result, crashes or hangs the worker is a failed
trial with its reason; the study goes on."""

import os
import threading
import time

import pytest
import torch

import kernel_space as ks
from kernel_space.spec import Problem
from tests.conftest import DEVICE
from tuner import measure
from tuner.trial import run_trial
from tuner.worker import Worker

CFG = dict(impl="fused", path="fma", BLOCK_M=1, BLOCK_N=8, BLOCK_K=32, SPLIT_K=1, GROUP_M=1, num_warps=2,
           num_stages=1, split_reduce="kernel", prologue="inline")


def _trial(op="o_proj_residual", cfg=CFG, m=1, n=37, k=100):
    spec = ks.get_op(op)
    rotation = measure.rotation_inputs(spec, m, n, k, torch.float16, DEVICE, 0)
    return run_trial(Problem(op, m, n, k, "float16"), "fused", cfg, DEVICE, rotation, seed=1)


def test_good_config_is_ok():
    t = _trial()
    assert t.status == "ok" and t.rel_error < 5e-3 and t.median_us > 0


def test_invalid_config_is_refused_before_compiling():
    t = _trial(cfg={**CFG, "BLOCK_M": 16, "BLOCK_N": 64, "BLOCK_K": 128})
    assert t.status == "failed" and t.reason.startswith("invalid config: path=fma holds")


def test_wrong_result_is_incorrect_with_its_error():
    spec = ks.get_op("o_proj_residual")
    real = spec.fused
    # A kernel that drops the residual: plausible output, wrong function.
    object.__setattr__(spec, "fused", lambda i, c: (real(i, c)[0] - i["residual"],))
    try:
        t = _trial()
    finally:
        object.__setattr__(spec, "fused", real)
    assert t.status == "incorrect" and t.rel_error > 0.1 and "tolerance" in t.reason


def test_compile_error_is_failed_with_its_reason():
    spec = ks.get_op("o_proj_residual")
    real = spec.fused

    def broken(i, c):
        raise RuntimeError("triton.compiler.errors.CompilationError: at 12:8: unsupported layout\nmore lines")

    object.__setattr__(spec, "fused", broken)
    try:
        t = _trial()
    finally:
        object.__setattr__(spec, "fused", real)
    assert t.status == "failed" and t.reason == "RuntimeError: triton.compiler.errors.CompilationError: at 12:8: " \
                                                "unsupported layout"


PROBLEM = Problem("o_proj_residual", 1, 37, 100, "float16")
TASK = {"kind": "trial", "problem": PROBLEM, "arm": "fused", "config": CFG, "seed": 0, "smem_limit": 232448}


def test_worker_measures_then_survives_a_killed_child():
    with Worker() as worker:
        assert worker.first_request is None
        reply = worker.request(dict(TASK))
        assert reply["ok"] and reply["result"].status == "ok"
        sent, took = worker.first_request  # the child's start to the first request, and its answer
        assert 0 <= sent < 5 and took > 0
        # The child's note that its start-up was done came before the answer, and is not the answer.
        assert 0 < worker.ready_s < sent + took
        pid = worker._proc.pid
        # Kill the child in the middle of a request, as a segfault or an OOM kill would.
        threading.Timer(0.3, lambda: os.kill(pid, 9)).start()
        big = Problem("o_proj_residual", 1, 512, 1024, "float16")  # seconds in the interpreter: killed mid-way
        died = worker.request({**TASK, "problem": big})
        assert not died["ok"] and died["error"].startswith("worker died (exit code -9)")
        again = worker.request(dict(TASK))  # a fresh child takes the next task
        assert again["ok"] and worker._proc.pid != pid and worker.restarts == 1


def test_a_worker_takes_one_task_at_a_time_and_answers_it_on_collect():
    with Worker() as worker:
        worker.submit(dict(TASK))
        with pytest.raises(RuntimeError, match="not collected"):
            worker.submit(dict(TASK))
        assert worker.collect()["result"].status == "ok"
        with pytest.raises(RuntimeError, match="no task"):
            worker.collect()


def test_worker_hang_is_a_failed_trial_and_a_restart():
    with Worker() as worker:
        t0 = time.monotonic()
        reply = worker.request(dict(TASK), timeout_s=0.05)  # spawning alone takes longer: looks like a hang
        assert not reply["ok"] and reply["error"].startswith("hang: no answer in 0 s")
        assert time.monotonic() - t0 < 30 and worker.restarts == 1
        assert worker.request(dict(TASK))["ok"]


def test_a_ctrl_c_inside_a_childs_start_is_delivered_after_it_not_lost():
    # The terminal's SIGINT may land while the parent starts a child with Ctrl-C ignored: it must
    # still reach the parent's handler once the child is started (it used to vanish).
    import subprocess
    import sys

    code = ("import os, signal\n"
            "from tuner.worker import sigint_ignored\n"
            "try:\n"
            "    with sigint_ignored():\n"
            "        os.kill(os.getpid(), signal.SIGINT)\n"
            "    print('lost')\n"
            "except KeyboardInterrupt:\n"
            "    print('delivered after the window')\n"
            "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n")
    import signal

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal's
    assert out.stdout.split("\n")[:2] == ["delivered after the window", "True"], out.stdout + out.stderr


@pytest.mark.parametrize("op", ["rmsnorm_qkv", "rmsnorm_gate_up_silu", "o_proj_residual", "lm_head"])
def test_io_bytes_counts_the_weight_once_and_the_activations_per_row(op):
    """The floor's bytes: a norm site's gain is folded into its weight (no gain tensor), lm_head keeps one."""
    from tuner.measure import io_bytes

    spec = ks.get_op(op)
    n, k, m = 24, 40, 5
    out_cols = spec.n_out(n)
    gain = 2 * k if op == "lm_head" else 0
    residual = 2 * m * out_cols if op == "o_proj_residual" else 0
    expected = 2 * (n * k + m * k + m * out_cols) + gain + residual
    assert io_bytes(spec, m, n, k, torch.float16, "cpu") == expected
