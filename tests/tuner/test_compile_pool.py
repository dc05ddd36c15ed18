"""The compile pool's lifecycle: warm() is idempotent, and a worker done with its queue ends the pool's
processes at once instead of waiting for each to close its CUDA context."""

import concurrent.futures as cf
import os
import re
import threading
import time

import pytest

from tests.conftest import child_env
from tuner import compile as pool_module


def test_shutdown_kill_ends_the_pool_processes_at_once():
    pool = pool_module._pool(2)
    pids = {pool.submit(os.getpid).result(timeout=120) for _ in range(4)}
    processes = list(pool._processes.values())
    assert pids and all(p.is_alive() for p in processes)
    pool_module.shutdown(kill=True)
    deadline = time.monotonic() + 10
    while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(p.is_alive() for p in processes) and pool_module._POOL == {}


def test_warm_again_starts_only_what_is_missing(monkeypatch):
    import torch

    submitted = []

    class Pool:
        def submit(self, fn, *args):
            submitted.append(cf.Future())
            return submitted[-1]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # a GPU host: the pool is not cut to the cores
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(pool_module, "_pool", lambda workers: pool)
    pool = Pool()
    pool_module.warm(3, workers=8)
    pool_module.warm(3, workers=8)
    assert len(submitted) == 3
    pool_module.warm(5, workers=8)
    assert len(submitted) == 5
    # The worker's log says how many are warm and how long they took.
    assert pool_module.warm_report() == "0 of 5 ready"
    for future in submitted[:2]:
        future.set_result(1.0)
    assert re.fullmatch(r"2 of 5 ready in \d+\.\d-\d+\.\d s", pool_module.warm_report())
    pool_module.shutdown()
    assert pool_module.warm_report() == ""


def test_the_pool_is_one_batch_of_processes(monkeypatch):
    from tuner.search import TuneOptions

    assert TuneOptions(batch=6).pool_workers == 6
    assert TuneOptions(batch=6, compile_workers=3).pool_workers == 3
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert pool_module.pool_size(8) == 8 and pool_module.pool_size() == 16
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert pool_module.pool_size(8) == 3


def test_a_compile_only_launch_loads_what_it_compiled(monkeypatch):
    """In the compile pool a launch compiles (warmup) and then loads the kernel, so that Triton builds its
    launcher there; a kernel that cannot load (too much shared memory) fails the compile job."""
    from kernel_space import _gemm

    class Compiled:
        loads = 0

        def _init_handles(self):
            Compiled.loads += 1

    class Kernel:
        def warmup(self, *args, grid, **kwargs):
            return Compiled()

        def __getitem__(self, grid):
            raise AssertionError("compile_only must not launch")

    with _gemm.compile_only():
        _gemm._launcher(Kernel(), (1,))(1, 2, BLOCK=16)
    assert Compiled.loads == 1

    def refuse(self):
        raise RuntimeError("out of resources: shared memory")

    monkeypatch.setattr(Compiled, "_init_handles", refuse)
    with _gemm.compile_only(), pytest.raises(RuntimeError, match="shared memory"):
        _gemm._launcher(Kernel(), (1,))()


def test_a_compile_stream_gives_back_each_compile_as_it_finishes(monkeypatch):
    """The tune's rolling ask submits one config at a time and takes back whichever compile ends first;
    a compile that raises comes back as its error."""
    import concurrent.futures as cf

    import torch

    def compile_one(problem, cfg, target):
        time.sleep(cfg["sleep"])
        if cfg.get("boom"):
            raise RuntimeError("ptxas died")
        return cfg["sleep"], None

    threads = cf.ThreadPoolExecutor(max_workers=3)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(pool_module, "_pool", lambda workers: threads)
    monkeypatch.setattr(pool_module, "_compile_one", compile_one)
    monkeypatch.setattr(pool_module, "current_target", lambda: None)
    stream = pool_module.CompileStream(3)
    for token, sleep in (("slow", 0.6), ("fast", 0.05), ("middle", 0.3)):
        stream.submit(token, (None, {"sleep": sleep, "boom": token == "middle"}))
    assert len(stream) == 3
    got = [stream.next_done() for _ in range(3)]
    assert [g[0] for g in got] == ["fast", "middle", "slow"] and len(stream) == 0
    assert got[0][1:] == (0.05, None) and got[1][1:] == (0.0, "compile failed: RuntimeError: ptxas died")
    with pytest.raises(ValueError, match="no compile in flight"):
        stream.next_done()
    threads.shutdown()


def test_a_failed_compile_reads_as_its_error_in_a_fresh_process():
    """_outcome's handler for a dead pool named concurrent.futures.process, which Python imports only when
    a process pool is made: a fresh process (on the GPU machine, a test worker that had made none)
    answered a failed compile with AttributeError."""
    import subprocess
    import sys

    code = ("import concurrent.futures as cf, sys; from tuner.compile import _outcome; f = cf.Future(); "
            "f.set_exception(RuntimeError('ptxas died')); print(_outcome(f))")
    out = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "(0.0, 'compile failed: RuntimeError: ptxas died')"


def test_a_worker_that_exits_at_once_leaves_no_semaphore_to_report(tmp_path):
    """A worker of `tune --gpus` kills its compile pool and ends with os._exit: without multiprocessing's
    exit finalizers the resource tracker reported the pool's semaphores as leaked at the end of its log."""
    import subprocess
    import sys

    script = tmp_path / "exit_now.py"
    script.write_text("import time\nfrom cli.worker import exit_now\nfrom tuner import compile as c\n\n"
                      "if __name__ == '__main__':\n"
                      "    pool = c._pool(2)\n"
                      "    [f.result() for f in [pool.submit(time.sleep, 0.01) for _ in range(2)]]\n"
                      "    c.shutdown(kill=True)\n"
                      "    exit_now()\n")
    out = subprocess.run([sys.executable, str(script)], env=child_env("TRITON_INTERPRET"), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "leaked semaphore" not in out.stderr, out.stderr[-2000:]


def test_a_compile_stream_gives_up_a_compile_running_past_the_limit(monkeypatch):
    import concurrent.futures as cf

    import torch

    release = threading.Event()

    def compile_one(problem, cfg, target):
        if cfg["stuck"]:
            release.wait(10)
        return 0.1, None

    threads = cf.ThreadPoolExecutor(max_workers=2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(pool_module, "_pool", lambda workers: threads)
    monkeypatch.setattr(pool_module, "_compile_one", compile_one)
    monkeypatch.setattr(pool_module, "GIVE_UP_POLL_S", 0.02)
    monkeypatch.setattr(pool_module, "current_target", lambda: None)
    stream = pool_module.CompileStream(2)
    stream.submit("stuck", (None, {"stuck": True}))
    stream.submit("quick", (None, {"stuck": False}))
    assert stream.next_done(give_up_after=0.3) == ("quick", 0.1, None)  # a finished one comes first
    t0 = time.monotonic()
    token, seconds, error = stream.next_done(give_up_after=0.3)
    assert token == "stuck" and 0.3 <= seconds < 2 and error == f"gave up: still compiling after {seconds:.0f} s"
    assert time.monotonic() - t0 < 2 and len(stream) == 0
    release.set()
    threads.shutdown()


def test_without_cuda_a_compile_stream_is_done_at_once_in_order(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    stream = pool_module.CompileStream()
    for token in ("a", "b"):
        stream.submit(token, (None, {}))
    assert [stream.next_done() for _ in range(2)] == [("a", 0.0, None), ("b", 0.0, None)]


def test_pool_processes_fork_from_a_server_and_see_the_environment_of_now(monkeypatch):
    """The pool's processes come from the fork server (torch imported there once), yet each sees this
    process's environment as it is when the pool starts, as a spawned process would."""
    from tuner.worker import process_context

    if "forkserver" not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip("no fork server on this platform")
    pool_module.shutdown()
    assert process_context().get_start_method() == "forkserver"
    monkeypatch.setenv("KERNEL_SEARCH_PROBE", "set after the server started")
    pool = pool_module._pool(2)
    try:
        assert pool.submit(_env, "KERNEL_SEARCH_PROBE").result(timeout=120) == "set after the server started"
        assert pool.submit(_torch_was_preloaded).result(timeout=120)
    finally:
        pool_module.shutdown(kill=True)


def _env(name: str) -> str | None:
    return os.environ.get(name)


def _torch_was_preloaded() -> bool:
    import sys

    return "torch" in sys.modules and "kernel_space" in sys.modules


def test_a_changed_interpreter_setting_spawns_instead(monkeypatch):
    """The kernels in the fork server were imported for the interpreter or not: once TRITON_INTERPRET
    differs from then, processes are spawned (they import the kernels as the setting says now)."""
    from tuner.worker import process_context

    process_context()  # the server's mode is fixed by the first call
    monkeypatch.setenv("TRITON_INTERPRET", "0" if os.environ.get("TRITON_INTERPRET") == "1" else "1")
    assert process_context().get_start_method() == "spawn"


def test_the_start_method_can_be_spawn_and_nothing_else(monkeypatch):
    from tuner.worker import process_context

    monkeypatch.setenv("KERNEL_SEARCH_START_METHOD", "spawn")
    assert process_context().get_start_method() == "spawn"
    monkeypatch.setenv("KERNEL_SEARCH_START_METHOD", "fork")
    with pytest.raises(ValueError, match="forkserver or spawn"):
        process_context()


def test_ahead_of_time_a_pool_process_compiles_for_the_gpu_without_cuda(tmp_path):
    """The pool compiles on meta tensors for a target GPU (an H100 here, on a host without one): every
    kernel of a config lands in Triton's cache for sm_90 with PDL, as the launchers plan it on the GPU;
    a config that asks for more shared memory than the target has fails its job; CUDA is never
    initialized, and nothing imports torch._dynamo."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = child_env("TRITON_INTERPRET", TRITON_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, str(root / "tests/tuner/aot_pool.py")], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    errors = report["errors"]
    assert errors["gemv"] is None and errors["split"] is None and errors["attention"] is None
    assert "shared memory" in errors["too_big"] and "232448" in errors["too_big"]
    names = sorted(k["name"] for k in report["kernels"])
    assert names.count("fused_linear_kernel") == 3  # the GEMV, the split GEMM, and the one too big to load
    assert {"splitk_epilogue_kernel", "decode_attention_kernel", "decode_attention_combine_kernel"} <= set(names)
    assert all(k["arch"] == 90 and k["launch_pdl"] for k in report["kernels"])
    assert not report["cuda_initialized"]
    # Arithmetic on meta tensors imports torch._dynamo on first use: 4-5 s in each of sixteen compile
    # processes at once, which held every worker's first study on an H200 x2 host (twenty-first session).
    assert not report["dynamo_imported"]


def test_ahead_of_time_the_launchers_see_the_target_gpu(monkeypatch):
    """Inside ahead_of_time a meta tensor stands for the target GPU (its capability, SMs and L2 decide PDL
    and grids); outside it is no GPU, and a CUDA tensor's own properties are never replaced."""
    import torch

    from kernel_space import _gemm, decode_attention

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv("KERNEL_SEARCH_PDL", raising=False)
    meta = torch.device("meta")
    target = _gemm.Target((9, 0), 100, 40 << 20, 200_000)
    assert not _gemm.on_gpu(meta) and not _gemm.pdl_enabled(meta)
    with _gemm.ahead_of_time(target):
        assert _gemm.on_gpu(meta) and _gemm.pdl_enabled(meta)
        assert _gemm.device_info(meta) == (9, 100) and _gemm.l2_bytes(meta) == 40 << 20
        assert decode_attention._sm_count(meta) == 100
        assert not _gemm.on_gpu(torch.device("cpu"))
    with _gemm.ahead_of_time(target._replace(capability=(8, 0))):
        assert _gemm.on_gpu(meta) and not _gemm.pdl_enabled(meta)  # Ampere: no PDL
    assert not _gemm.on_gpu(meta) and decode_attention._sm_count(meta) == 132


def test_the_pool_compiles_ahead_of_time_unless_told_not_to(monkeypatch):
    """A worker's compile stream hands its GPU (read once, no CUDA context) to every job; with
    KERNEL_SEARCH_POOL_CONTEXT=1 the jobs carry none and compile on the GPU, each process with a context."""
    import torch

    from kernel_space import _gemm

    class Props:
        major, minor, multi_processor_count, L2_cache_size, shared_memory_per_block_optin = 9, 0, 132, 50 << 20, 232_448

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: Props())
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(pool_module, "_TARGET", [])
    monkeypatch.delenv("KERNEL_SEARCH_POOL_CONTEXT", raising=False)
    assert pool_module.pool_is_ahead()
    assert pool_module.CompileStream(2).target == _gemm.Target((9, 0), 132, 50 << 20, 232_448)
    monkeypatch.setenv("KERNEL_SEARCH_POOL_CONTEXT", "1")
    assert not pool_module.pool_is_ahead() and pool_module.CompileStream(2).target is None


def test_use_target_points_the_triton_driver_at_the_gpu_compiled_for(monkeypatch):
    from triton.runtime import driver

    from kernel_space import _gemm

    monkeypatch.setattr(driver, "_active", None)
    pool_module.use_target(_gemm.Target((9, 0), 132, 50 << 20, 232_448))
    first = driver.active
    assert first.get_current_target().arch == 90 and first.get_current_stream(0) == 0
    pool_module.use_target(_gemm.Target((9, 0), 132, 50 << 20, 232_448))
    assert driver.active is first  # the same GPU: the JIT keeps its binders
    pool_module.use_target(_gemm.Target((10, 0), 148, 126 << 20, 232_448))
    assert driver.active.get_current_target().arch == 100
    # Triton's JIT keeps a binder (and its target) per device: two targets are two devices.
    assert driver.active.get_current_device() != first.get_current_device()


def test_ahead_of_time_attention_compiles_over_the_whole_cache():
    """On a GPU the pool compiles attention over a shortened cache (memory); ahead of time, on the meta
    device, over the whole context, whose length decides the prefetch plan the GPU process compiles."""
    import torch

    from kernel_space import get_op
    from kernel_space.attention_shape import encode_heads, encode_m
    from kernel_space.decode_attention import COMPILE_CONTEXT

    spec, (n, k) = get_op("decode_attention"), encode_heads(16, 8, 128)
    m = encode_m(1, 4 * COMPILE_CONTEXT)
    meta = spec.compile_inputs(m, n, k, torch.bfloat16, "meta", None)
    assert meta["k_cache"].shape[1] >= 4 * COMPILE_CONTEXT and meta["k_cache"].device.type == "meta"
    cpu = spec.compile_inputs(m, n, k, torch.float32, "cpu", torch.Generator().manual_seed(0))
    assert cpu["k_cache"].shape[1] <= COMPILE_CONTEXT + 1
