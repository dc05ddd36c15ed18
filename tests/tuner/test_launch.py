"""tune --gpus starts its workers before torch is imported: the GPUs are counted through NVML (cut to
CUDA_VISIBLE_DEVICES), and a worker started before its database exists waits for it."""

import threading
import time

import pytest

from tuner import launch


@pytest.mark.parametrize("visible, count", [(None, 4), ("2,3", 2), ("0,-1,1", 1), ("", 0), ("0,1,2,3,4,5", 4)])
def test_gpus_are_counted_without_torch(monkeypatch, visible, count):
    monkeypatch.setattr(launch, "_nvml_count", lambda: 4)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert launch.visible_gpu_count() == count


def test_without_nvml_torch_counts(monkeypatch):
    import torch

    monkeypatch.setattr(launch, "_nvml_count", lambda: None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert launch.visible_gpu_count() == 3


def test_a_waiting_worker_waits_for_its_database(tmp_path):
    from cli.worker import _wait_for_database

    path = tmp_path / "later.db"
    threading.Timer(0.3, path.touch).start()
    t0 = time.monotonic()
    _wait_for_database(f"sqlite:///{path}", 30)
    assert path.exists() and 0.2 < time.monotonic() - t0 < 10
    t0 = time.monotonic()
    _wait_for_database(f"sqlite:///{tmp_path / 'never.db'}", 0)  # no --wait: no waiting
    assert time.monotonic() - t0 < 1


def _two_sockets(cpu: int) -> tuple[int, int]:
    """A host of 2 sockets x 8 cores x 2 threads, Linux's numbering: cpu c and c + 16 share a core."""
    core = cpu % 16
    return core // 8, core


def test_cpu_shares_keep_hyperthreads_together_and_sockets_apart():
    shares = launch.cpu_shares(4, set(range(32)), _two_sockets)
    assert [sorted(s) for s in shares] == [[0, 1, 2, 3, 16, 17, 18, 19], [4, 5, 6, 7, 20, 21, 22, 23],
                                           [8, 9, 10, 11, 24, 25, 26, 27], [12, 13, 14, 15, 28, 29, 30, 31]]
    three = launch.cpu_shares(3, set(range(32)), _two_sockets)
    assert sorted(len(s) for s in three) == [10, 10, 12] and set().union(*three) == set(range(32))
    assert not set.intersection(*three[:2])


def test_cpu_shares_give_up_with_fewer_cores_than_workers():
    assert launch.cpu_shares(4, {0, 1, 2}, lambda cpu: (0, cpu)) is None
    assert launch.cpu_shares(2, {0, 16}, _two_sockets) is None  # one core, two threads
    assert launch.cpu_shares(0, {0, 1}) is None


def test_workers_are_pinned_only_when_asked(monkeypatch, tmp_path):
    pinned = {}

    class Proc:
        def __init__(self, *args, **kwargs):
            self.pid = 1000 + len(pinned_calls)
            pinned_calls.append(self.pid)

    pinned_calls: list = []
    monkeypatch.setattr(launch.subprocess, "Popen", Proc)
    monkeypatch.setattr(launch.os, "sched_setaffinity", lambda pid, cpus: pinned.__setitem__(pid, set(cpus)),
                        raising=False)
    monkeypatch.setattr(launch, "cpu_shares", lambda n: [{0, 1}, {2, 3}][:n])
    monkeypatch.delenv("KERNEL_SEARCH_PIN_CPUS", raising=False)
    procs = launch.spawn_workers("sqlite:///x.db", [0, 1], 8, 0, None, str(tmp_path))
    assert len(procs) == 2 and pinned == {}
    monkeypatch.setenv("KERNEL_SEARCH_PIN_CPUS", "1")
    procs += launch.spawn_workers("sqlite:///x.db", [0, 1], 8, 0, None, str(tmp_path))
    assert pinned == {1002: {0, 1}, 1003: {2, 3}}
    for _, _, log in procs:
        log.close()


def test_the_cli_starts_workers_before_its_heavy_imports():
    """What runs before `tune --gpus` spawns its workers (and before a worker starts its fork server)
    imports neither torch nor SQLAlchemy: the CLI's modules, the database URL and the launcher. Each
    second here was a second of every tune's start-up (2 s on the H100 hosts before the storage package
    imported its modules lazily)."""
    import subprocess
    import sys

    heavy = ("torch", "sqlalchemy", "alembic", "optuna", "pandas", "triton")
    code = ("import sys, cli.app, storage.url, tuner.launch, tuner.compile, tuner.trace; "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_storage_package_still_gives_every_name():
    import storage

    for name in storage.__all__:
        assert getattr(storage, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        storage.nope  # noqa: B018


def test_the_cuda_driver_starts_in_a_thread(monkeypatch):
    """init_cuda_in_background calls the driver's cuInit(0) from a thread of its own, so that the
    imports go on meanwhile; not under Triton's interpreter; a machine without the driver is no error."""
    import ctypes

    calls = []

    class Driver:
        def cuInit(self, flags):  # the driver's name
            calls.append((flags, threading.current_thread() is threading.main_thread()))
            return 0

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(ctypes, "CDLL", lambda name: Driver() if name == "libcuda.so.1" else None)
    launch.init_cuda_in_background().join(5)
    assert calls == [(0, False)]

    def missing(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", missing)
    thread = launch.init_cuda_in_background()
    thread.join(5)
    assert not thread.is_alive()
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert launch.init_cuda_in_background() is None
