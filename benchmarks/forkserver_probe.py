"""Preflight of a device call: a process forked from kernel-search's preloaded fork server
(tuner.worker.process_context) opens CUDA and names the GPU; prints how long that took.

    python3 benchmarks/forkserver_probe.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _device_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"


def main() -> int:
    from tuner.worker import process_context

    t0 = time.monotonic()
    ctx = process_context()
    with ctx.Pool(1) as pool:
        name = pool.apply(_device_name)
    print(f"fork server ({ctx.get_start_method()}): a forked process opened {name} in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
