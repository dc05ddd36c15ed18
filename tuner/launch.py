"""Start the worker processes of `tune --gpus` before anything heavy is imported here.

On the H100 machines `import torch` alone takes about 3 s and a worker's imports about 5 s (measured:
benchmarks/results/startup_probe_H100_2026-11-26.json); every second before the workers start is a
second of start-up that caps a tune's speedup on many GPUs. So this module imports nothing of torch,
Triton or the kernels: it counts the GPUs through NVML (or CUDA_VISIBLE_DEVICES) and starts one
`kernel-search worker` per GPU, which waits for the database and the studies the tune plans meanwhile.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import subprocess
import sys
import threading


def parse_gpus(text: str, available: int) -> list[int]:
    """'all' or a comma list of device indices such as '0,1,3' -> sorted distinct indices."""
    if available < 1:
        raise ValueError("--gpus needs CUDA GPUs and this machine has none")
    if text == "all":
        return list(range(available))
    try:
        gpus = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"--gpus must be 'all' or a comma list of GPU indices, got {text!r}") from None
    if not gpus or gpus[0] < 0 or gpus[-1] >= available:
        raise ValueError(f"--gpus {text!r}: this machine has GPUs 0..{available - 1}")
    return gpus


def visible_gpu_count() -> int:
    """The CUDA devices this process may use, without importing torch where NVML answers: its count, cut
    to CUDA_VISIBLE_DEVICES's entries up to the first invalid one (CUDA's own rule) when that is set.
    Without NVML, torch's count."""
    total = _nvml_count()
    if total is None:
        import torch

        return torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return total
    count = 0
    for entry in visible.split(","):
        entry = entry.strip()
        if not entry or entry.startswith("-"):
            break
        count += 1
    return min(count, total)


def _nvml_count() -> int | None:
    """NVML's device count; None where NVML cannot answer (no driver, no pynvml)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return None


def init_cuda_in_background() -> threading.Thread | None:
    """Initialize the CUDA driver (cuInit) now, in a thread, while this process imports torch and the rest.
    A process's first CUDA call costs 0.3 s alone and 0.7-0.8 s with four processes of a host starting
    at once (H200 x4, benchmarks/results/session36_H200_2026-11-29/startup); torch's first call then finds
    the driver ready. ctypes lets go of the interpreter lock during the call, so the imports go on. Where
    there is no driver the thread ends at once and torch says what it says later. Safe with this
    package's processes: the fork server and the `tune --gpus` workers start by exec, never by fork."""
    def init() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libcuda.so.1").cuInit(0)

    if os.environ.get("TRITON_INTERPRET") == "1":
        return None
    thread = threading.Thread(target=init, name="cuInit", daemon=True)
    thread.start()
    # A process that ends at once (a bad argument) waits for the call rather than unload the driver
    # under it at exit.
    atexit.register(thread.join, 10)
    return thread


def spawn_workers(url: str, gpus: list[int], batch: int, seed: int, seconds: float | None, log_dir: str,
                  wait_s: float = 0.0, plan: str | None = None) -> list:
    """One `kernel-search worker` process per GPU (CUDA_VISIBLE_DEVICES), its output in log_dir; each
    waits up to wait_s for its studies (and, without `plan`, for the database); with `plan`
    (cli.tune.PlanSpec's JSON) it creates the database and queues its GPU kind's studies itself. Returns
    (gpu, Popen, log file) triples."""
    pin = os.environ.get("KERNEL_SEARCH_PIN_CPUS") == "1" and hasattr(os, "sched_setaffinity")  # Linux only
    shares = (cpu_shares(len(gpus)) if pin else None) or [None] * len(gpus)
    procs = []
    for gpu, cpus in zip(gpus, shares, strict=True):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(gpu)}
        cmd = [sys.executable, "-m", "cli.app", "worker", "--db", url, "--batch", str(batch), "--seed", str(seed),
               "--exit-at-once"]
        if seconds is not None:
            cmd += ["--seconds", str(seconds)]
        if wait_s:
            cmd += ["--wait", str(wait_s)]
        if plan is not None:
            cmd += ["--plan", plan]
        log = open(os.path.join(log_dir, f"worker-gpu{gpu}.log"), "w")
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        if cpus is not None:
            # At once, before the worker forks its fork server, benchmarking child and compile pool:
            # they inherit it.
            with contextlib.suppress(OSError):
                os.sched_setaffinity(proc.pid, cpus)
        procs.append((gpu, proc, log))
    return procs


def cpu_shares(n: int, cpus: set[int] | None = None, core_of=None) -> list[set[int]] | None:
    """This process's CPUs cut into n shares of whole physical cores (hyper-threads of a core stay in
    one share), cores in (socket, core) order so that a share keeps to one socket where it can; None
    when there are fewer cores than shares. core_of(cpu) -> (socket, core) defaults to Linux's sysfs."""
    cpus = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
    core_of = core_of or _core_of
    cores: dict[tuple[int, int], list[int]] = {}
    for cpu in cpus:
        cores.setdefault(core_of(cpu), []).append(cpu)
    if len(cores) < n or n < 1:
        return None
    ordered = [cores[key] for key in sorted(cores)]
    return [{cpu for core in ordered[i * len(ordered) // n:(i + 1) * len(ordered) // n] for cpu in core}
            for i in range(n)]


def _core_of(cpu: int) -> tuple[int, int]:
    base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
    try:
        with open(f"{base}/physical_package_id") as f1, open(f"{base}/core_id") as f2:
            return int(f1.read()), int(f2.read())
    except (OSError, ValueError):
        return 0, cpu


def stop(procs: list) -> None:
    """End the workers still running (after a failure or Ctrl-C here) and close their logs."""
    for _, proc, log in procs:
        if proc.poll() is None:
            proc.terminate()
        proc.wait()
        log.close()
