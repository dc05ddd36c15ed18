"""Compile many configs in parallel: a process pool fills Triton's on-disk cache, so the process that
times them only loads binaries. Triton's compile runs mostly in LLVM and ptxas, one core each.

The pool compiles ahead of time (since the nineteenth session): a job carries its worker's GPU as a
kernel_space._gemm.Target, the launcher runs on meta tensors under _gemm.ahead_of_time, and Triton's
driver in the pool process answers for that GPU (_AheadDriver), so no pool process opens a CUDA
context. On a 4-GPU host the 32 contexts of four workers' pools had been opened at once with the
benchmarking children's, which then took twice as long to be ready. The binaries are the same ones
the GPU process's own launch would build (same target, specialization and options, so the same
cache key: benchmarks/pool_ahead_check.py counts what the GPU process compiles again).
KERNEL_SEARCH_POOL_CONTEXT=1 compiles on the GPU as before, each pool process with its own context."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import threading
import time
from concurrent.futures.process import BrokenProcessPool

from tuner import trace
from tuner.worker import Worker, adopt_environment, process_context, sigint_ignored, start_fork_server

_INPUTS: dict = {}
# How often CompileStream.next_done looks at the compiles it may give up on.
GIVE_UP_POLL_S = 0.25


def _compile_one(problem, cfg: dict, target=None) -> tuple[float, str | None]:
    """Compile one config into Triton's cache. target (a kernel_space._gemm.Target): ahead of time, on
    tensors of the meta device, with Triton's driver answering for that GPU, so this process opens no
    CUDA context; None: on the GPU's own inputs (KERNEL_SEARCH_POOL_CONTEXT=1)."""
    import torch

    from kernel_space import _gemm, get_op
    from tuner.trial import short_reason

    trace.event("compile start", op=problem.op, m=problem.m)
    spec = get_op(problem.op)
    key = (problem, target)
    if not _INPUTS:  # this process's first job: the listener stays for the process's life
        trace.watch_compiles()
    if key not in _INPUTS:
        _INPUTS.clear()
        if target is None:
            gen = torch.Generator(device="cuda").manual_seed(0)
            device = "cuda"
        else:
            use_target(target)
            gen, device = None, "meta"
        _INPUTS[key] = spec.compile_inputs(problem.m, problem.n, problem.k, getattr(torch, problem.dtype), device, gen)
    t0 = time.perf_counter()
    try:
        with _gemm.compile_only(), (_gemm.ahead_of_time(target) if target is not None else contextlib.nullcontext()):
            spec.fused(_INPUTS[key], cfg)
    except Exception as exc:
        error = short_reason(exc)
    else:
        error = None
    seconds = time.perf_counter() - t0
    trace.event("compile done", s=round(seconds, 3), error=error is not None)
    return seconds, error


class _AheadDriver:
    """Triton's driver as a compile process without a CUDA context sees it: the GPU it compiles for
    (its target) and the null stream; the launcher is Triton's own CUDA launcher, built into Triton's
    cache where the CUDA library is there to link against (a GPU host). Its "device" is the target's
    arch number: Triton's JIT keeps a kernel's binder, and with it the target, per device, so a
    process that compiled for one GPU and then another keeps the two apart."""

    def __init__(self, target):
        from triton.backends.compiler import GPUTarget

        self.target = GPUTarget("cuda", target.capability[0] * 10 + target.capability[1], 32)
        self.launcher_cls = _cuda_launcher()

    def get_current_target(self):
        return self.target

    def get_current_device(self) -> int:
        return self.target.arch

    def get_current_stream(self, device=None) -> int:
        return 0

    @staticmethod
    def is_active() -> bool:
        return True


def _cuda_launcher():
    """Triton's CUDA launcher class, or None where the CUDA driver library is missing (a CPU host)."""
    try:
        from triton.backends.nvidia.driver import CudaLauncher, libcuda_dirs

        libcuda_dirs()
    except Exception:
        return None
    return CudaLauncher


def use_target(target) -> None:
    """Point this process's Triton driver at target (a kernel_space._gemm.Target): its JIT then compiles
    for that GPU without touching CUDA. For the compile pool's processes only: nothing they compile
    can be launched from them."""
    from triton.runtime import driver

    active, arch = getattr(driver, "_active", None), target.capability[0] * 10 + target.capability[1]
    if not (isinstance(active, _AheadDriver) and active.target.arch == arch):
        driver.set_active(_AheadDriver(target))


def pool_is_ahead() -> bool:
    """Whether the compile pool compiles ahead of time, without CUDA contexts (the default)."""
    return os.environ.get("KERNEL_SEARCH_POOL_CONTEXT") != "1"


def current_target():
    """The kernel_space._gemm.Target of this process's GPU (device 0, from torch's device properties,
    read once, as tuner.tune.device_limits reads them); None without CUDA, or where
    KERNEL_SEARCH_POOL_CONTEXT=1 asks the compile pool to compile on the GPU as before (each of its
    processes then opens a CUDA context)."""
    import torch

    if not pool_is_ahead() or not torch.cuda.is_available():
        return None
    if not _TARGET:
        from kernel_space._gemm import Target

        props = torch.cuda.get_device_properties(0)
        _TARGET.append(Target((props.major, props.minor), props.multi_processor_count,
                              int(getattr(props, "L2_cache_size", 50 << 20)), props.shared_memory_per_block_optin))
    return _TARGET[0]


_TARGET: list = []


# What a compile process warms up for before its worker knows its GPU: any target loads the compiler.
_WARM_TARGET = (9, 0)


def _warm_one(ahead: bool = True) -> float:
    """Import what a compile needs and load the compiler (the NVIDIA backend, LLVM, ptxas) with a first
    compile: the seconds a pool process's first job would otherwise spend before it compiles anything.
    ahead: ahead of time, opening no CUDA context (for an sm_90 target: the jobs then name their own);
    else the CUDA context is opened too (KERNEL_SEARCH_POOL_CONTEXT=1)."""
    import importlib

    t0 = time.perf_counter()
    trace.event("warm start")
    for module in ("torch", "kernel_space", "tuner.trial"):  # the ops and the Triton kernels they launch
        importlib.import_module(module)
    torch = importlib.import_module("torch")
    from kernel_space import _gemm

    if ahead:
        target = _gemm.Target(_WARM_TARGET, 132, 50 << 20, 232_448)
        use_target(target)
        with _gemm.ahead_of_time(target):
            _gemm._load(_gemm.warmup_kernel.warmup(torch.zeros(1, device="meta"), grid=(1,)))
        trace.event("warm done")
        return time.perf_counter() - t0
    torch.cuda.init()
    triton_driver_ready()
    _gemm._load(_gemm.warmup_kernel.warmup(torch.zeros(1, device="cuda"), grid=(1,)))
    return time.perf_counter() - t0


def triton_driver_ready() -> None:
    """Start Triton's CUDA driver in this process now: on first use it builds (once per Triton cache,
    with the host's C compiler) and loads its small C helper module, which a process's first compile
    or kernel load would otherwise wait for."""
    from triton.runtime import driver

    driver.active.get_current_device()


def pool_size(workers: int | None = None) -> int:
    """Compile processes: `workers` (a tune passes TuneOptions.pool_workers) or 16, at most one fewer
    than the cores."""
    return max(1, min(workers or 16, (os.cpu_count() or 2) - 1))


def warm(processes: int, workers: int | None = None, cuda: bool | None = None) -> None:
    """Start `processes` of the compile pool now, without waiting: each (forked with torch, Triton and
    the kernels imported: tuner.worker.process_context) loads the compiler (and, only with
    KERNEL_SEARCH_POOL_CONTEXT=1, opens a CUDA context) while the caller does other start-up work (a
    tune's first batch found them ready instead of paying for that then). Calling it again starts only what is missing.
    Nothing happens without CUDA. cuda: whether there is a GPU, if the caller knows (then torch is not
    imported here: the processes start before this one's own imports)."""
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if not cuda or os.environ.get("TRITON_INTERPRET") == "1":
        return
    size = pool_size(workers)
    with _LOCK, sigint_ignored():  # from start_in_background's thread too
        pool, wanted = _pool(size), min(processes, size)
        for _ in range(wanted - _WARMED.get(size, 0)):
            started = time.monotonic()
            done = pool.submit(_warm_one, pool_is_ahead())
            done.add_done_callback(lambda _, t=started: _WARM_DONE.append(time.monotonic() - t))
            _WARM_ASKED.append(started)
        _WARMED[size] = max(_WARMED.get(size, 0), wanted)


def warm_report() -> str:
    """How the compile processes warm() started are doing, for a worker's log: how many are ready and
    how many seconds after warm() asked (their imports and first compile), e.g. '8 of 8 ready in
    4.1-6.3 s'. Empty when none was started."""
    if not _WARM_ASKED:
        return ""
    done = sorted(_WARM_DONE)
    spread = f" in {done[0]:.1f}-{done[-1]:.1f} s" if done else ""
    return f"{len(done)} of {len(_WARM_ASKED)} ready{spread}"


def start_in_background(child, processes: int, workers: int | None = None,
                        cuda: bool | None = None) -> threading.Thread:
    """Start the fork server (start_fork_server), then from a thread the benchmarking child (a
    tuner.worker.Worker) and warm(processes, workers, cuda): asking the server for a process waits
    until it has imported torch and the kernels, which the caller need not do. Returns the thread."""
    if cuda or isinstance(child, Worker):  # a fake child (the tests) and no GPU start no process
        start_fork_server()
    thread = threading.Thread(target=_start_all, args=(child, processes, workers, cuda), daemon=True,
                              name="kernel-search-start")
    thread.start()
    return thread


def _start_all(child, processes: int, workers: int | None, cuda: bool | None) -> None:
    child.start()
    warm(processes, workers, cuda)


def precompile(jobs: list[tuple], workers: int | None = None) -> list[tuple[float, str | None]]:
    """jobs: (kernel_space.Problem, cfg) pairs. Returns (seconds, error or None) per job, in order.
    Without CUDA there is nothing to precompile (the interpreter compiles nothing): all zeros."""
    out: list = [None] * len(jobs)
    for i, seconds, error in compile_as_completed(jobs, workers):
        out[i] = (seconds, error)
    return out


def compile_as_completed(jobs: list[tuple], workers: int | None = None):
    """Submit every (kernel_space.Problem, cfg) job to the pool now; returns an iterator of (index,
    seconds, error or None) in the order the compiles finish, so that the caller times each config
    while the others still compile. Without CUDA nothing compiles: all zeros, in order."""
    stream = CompileStream(workers)
    for i, job in enumerate(jobs):
        stream.submit(i, job)
    return (stream.next_done() for _ in range(len(jobs)))


class CompileStream:
    """Compiles submitted one at a time and taken back as they finish: a tune keeps the pool full,
    submitting a new config each time one is measured, instead of waiting for a whole batch's slowest
    compile before it asks for the next batch. Without CUDA (or under the interpreter) nothing
    compiles: each job is done at once, with zero seconds, in the order submitted."""

    def __init__(self, workers: int | None = None):
        import torch

        self.workers = workers
        self.cuda = torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1"
        self.target = current_target() if self.cuda else None  # the pool compiles for it, ahead of time
        self._futures: dict = {}  # future -> token
        self._running_since: dict = {}  # future -> time.monotonic() when first seen running
        self._done: list = []  # (token, 0.0, None) without CUDA, oldest first

    def __len__(self) -> int:
        return len(self._futures) + len(self._done)

    def submit(self, token, job: tuple) -> None:
        """Start compiling job, a (kernel_space.Problem, cfg) pair; token comes back with its outcome."""
        if not self.cuda:
            self._done.append((token, 0.0, None))
            return
        pool = _pool(pool_size(self.workers))
        with sigint_ignored():  # Ctrl-C is the parent's
            self._futures[pool.submit(_compile_one, *job, self.target)] = token
        trace.event("compile submitted", token=token)

    def ready(self) -> bool:
        """Whether next_done() would answer without waiting for a compile."""
        return bool(self._done) or any(fut.done() for fut in self._futures)

    def next_done(self, give_up_after: float | None = None) -> tuple:
        """(token, seconds, error or None) of a finished compile, waiting for one if none is.
        give_up_after: a compile seen running for longer than this many seconds is given up instead
        (its error says so; it goes on in its pool process, and nothing waits for it)."""
        if self._done:
            return self._done.pop(0)
        if not self._futures:
            raise ValueError("no compile in flight")
        while True:
            timeout = None if give_up_after is None else GIVE_UP_POLL_S
            finished, _ = cf.wait(self._futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)
            if finished:
                fut = next(iter(finished))
                self._running_since.pop(fut, None)
                trace.event("compile taken", token=self._futures[fut])
                return (self._futures.pop(fut), *_outcome(fut))
            now = time.monotonic()
            for fut in self._futures:
                if fut.running():
                    self._running_since.setdefault(fut, now)
            overdue = [(now - t, fut) for fut, t in self._running_since.items() if now - t > give_up_after]
            if overdue:
                age, fut = max(overdue, key=lambda pair: pair[0])
                del self._running_since[fut]
                return self._futures.pop(fut), age, f"gave up: still compiling after {age:.0f} s"


def _outcome(fut) -> tuple[float, str | None]:
    try:
        return fut.result()
    except BrokenProcessPool as exc:
        shutdown()  # a worker died (a crash in the compiler): the next batch gets a fresh pool
        return 0.0, f"compile worker died: {exc}"
    except Exception as exc:
        return 0.0, f"compile failed: {type(exc).__name__}: {exc}"


# One pool for the whole run: starting 15 processes that import torch costs seconds per batch.
_POOL: dict = {}
_WARMED: dict = {}  # pool size -> processes warm() started in that pool: a second call adds only what is missing
_LOCK = threading.RLock()  # the pools and warm()'s counts, changed from start_in_background's thread too
_WARM_ASKED: list = []  # time.monotonic() of each warm() submission
_WARM_DONE: list = []  # seconds from each submission to its warm-up's end (the pool's thread appends)


def _pool(workers: int) -> cf.ProcessPoolExecutor:
    with _LOCK:
        pool = _POOL.get(workers)
        if pool is None:
            shutdown()
            pool = _POOL[workers] = cf.ProcessPoolExecutor(max_workers=workers, mp_context=process_context(),
                                                           initializer=adopt_environment,
                                                           initargs=(dict(os.environ),))
        return pool


def shutdown(kill: bool = False) -> None:
    """Stop the compile pool (the tuner calls this when it is done). kill: end its processes at once
    rather than let each close its CUDA context, which the interpreter's exit waits for (a worker done
    with its queue: nothing of theirs is needed, and Triton writes its cache by atomic renames)."""
    with _LOCK:
        for pool in _POOL.values():
            processes = list((getattr(pool, "_processes", None) or {}).values()) if kill else []
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.kill()
        _POOL.clear()
        _WARMED.clear()
        _WARM_ASKED.clear()
        _WARM_DONE.clear()
