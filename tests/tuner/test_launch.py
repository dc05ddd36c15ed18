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
