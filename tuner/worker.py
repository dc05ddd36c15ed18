"""The benchmarking child process. It owns the CUDA context: an illegal memory access or a hang kills
the child, not the study. The parent marks that trial failed with its reason and starts a new child.

Tasks are small dicts over a pipe; the child keeps the cold-L2 input rotation of the current shape,
so the weights are generated once per study, not per trial.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback

# A trial that takes longer than this is a hang (the biggest decode op times in well under a second;
# compile happens before, in the compile pool, or on first launch within the first trial).
DEFAULT_TIMEOUT_S = 300.0


@contextlib.contextmanager
def sigint_ignored():
    """Start child processes with Ctrl-C ignored: the terminal sends SIGINT to the whole process
    group, and a child importing torch or mid-trial printed a 70-line KeyboardInterrupt traceback.
    An ignored signal stays ignored across exec (and Python then installs no handler of its own); the
    parent alone handles Ctrl-C and ends its children.

    SIGINT is also blocked meanwhile, so that a Ctrl-C arriving inside the window is not lost: Linux
    keeps a blocked signal pending even while it is ignored, and delivers it to the parent's own
    handler once the handler is back and the signal unblocked (a Ctrl-C that landed while the
    benchmarking child started used to vanish, and the tune ran on to the end). The children inherit
    the block too: the parent ends them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


# What the fork server imports once, before it forks the benchmarking child and the compile processes:
# each then starts with torch, Triton and the kernels imported, instead of importing them itself (on an
# H100 x4 host, four workers' forty processes took 5-15 s each to import torch at once). Measured in
# the fifteenth session: a child ready 7-10 s after its fork against 13-16 s after its spawn, yet four
# workers' first result no sooner and their tune no faster (benchmarks/README.md).
PRELOAD = ["torch", "triton", "kernel_space", "tuner.measure", "tuner.trial", "tuner.compile"]


_SERVER_MODE: list = []  # TRITON_INTERPRET when the fork server was first asked for


def process_context():
    """The multiprocessing context of the benchmarking child and the compile pool: Linux's fork server,
    preloaded with PRELOAD (started on first use, from a process that has not opened CUDA: the forked
    processes open their own contexts). The processes adopt this process's environment as it is when
    they start (adopt_environment), as spawned ones would; but the kernels were imported in the
    server, for Triton's interpreter or not as TRITON_INTERPRET said then: once that has changed (a
    worker that found no usable GPU after all) processes are spawned. Spawn where there is no fork
    server, or where KERNEL_SEARCH_START_METHOD=spawn says so (as before the fifteenth session)."""
    mode = os.environ.get("TRITON_INTERPRET")
    if not _SERVER_MODE:
        _SERVER_MODE.append(mode)
    wanted = os.environ.get("KERNEL_SEARCH_START_METHOD", "forkserver")
    if wanted not in ("forkserver", "spawn"):
        raise ValueError(f"KERNEL_SEARCH_START_METHOD must be forkserver or spawn, not {wanted!r}")
    if wanted == "spawn" or "forkserver" not in mp.get_all_start_methods() or _SERVER_MODE[0] != mode:
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD + ([] if mode == "1" else ["tuner._gpu_preload"]))
    return ctx


def start_fork_server() -> None:
    """Start the fork server now, from the main thread with Ctrl-C ignored (the processes it forks keep
    that), without waiting for it: it imports PRELOAD while this process goes on. A process it is asked
    for meanwhile waits for those imports."""
    if process_context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        with sigint_ignored():
            forkserver.ensure_running()


def adopt_environment(env: dict) -> None:
    """Make a forked process's environment the one its parent has now, not the fork server's (a test's
    or a caller's setting made after the server started)."""
    if env != os.environ:
        os.environ.clear()
        os.environ.update(env)


def _child_main(conn, env: dict) -> None:
    adopt_environment(env)
    import torch

    from kernel_space import get_op
    from tuner import measure, trace
    from tuner.trial import ContextLost, run_trial

    trace.watch_compiles()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        from tuner.compile import triton_driver_ready

        triton_driver_ready()  # before the first trial asks for it
        torch.empty(1, device=device)  # the CUDA context too
    # When the child could take its first task: the worker's log says where its start-up went.
    conn.send({"ready_at": time.monotonic()})
    trace.event("child ready")
    state = {"key": None, "rotation": None, "ceilings": None}

    def rotation_for(problem, seed):
        if state["key"] != problem:
            state["rotation"] = None  # free the last shape's weights first
            if device == "cuda":
                torch.cuda.empty_cache()
            state["rotation"] = measure.rotation_inputs(get_op(problem.op), problem.m, problem.n, problem.k,
                                                        getattr(torch, problem.dtype), device, seed)
            state["key"] = problem
        return state["rotation"]

    def ceilings():
        if state["ceilings"] is None and device == "cuda":
            state["ceilings"] = (measure.measure_copy_bandwidth(device), measure.measure_matmul_rate(device))
        return state["ceilings"]

    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        kind = task.pop("kind")
        trace.event("child task", kind=kind, arm=task.get("arm"))
        try:
            if kind == "trial":
                rot = rotation_for(task["problem"], task["seed"])
                res = run_trial(task["problem"], task["arm"], task["config"], device, rot, task["seed"],
                                task["smem_limit"])
                conn.send({"ok": True, "result": res})
            elif kind == "confirm":
                conn.send({"ok": True, "result": _confirm(task, device, rotation_for, ceilings)})
            else:
                conn.send({"ok": False, "error": f"unknown task {kind!r}"})
        except ContextLost as exc:
            conn.send({"ok": False, "error": f"CUDA context lost: {exc}", "restart": True})
            os._exit(3)
        except Exception as exc:
            conn.send({"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})


def _confirm(task, device, rotation_for, ceilings) -> dict:
    """Paired A/B of each candidate against the unfused path, plus the cuBLAS GEMM (if the op has one)
    and the floor."""
    import torch

    from kernel_space import get_op
    from tuner import measure
    from tuner.trial import run_trial

    problem = task["problem"]
    m, n, k, dtype = problem.m, problem.n, problem.k, getattr(torch, problem.dtype)
    spec = get_op(problem.op)
    rot = rotation_for(problem, task["seed"])
    unfused = measure.arm_fn(spec, "unfused", None)
    pairs = []
    for cfg in task["configs"]:
        speedup, t_fused, t_unfused = measure.paired_speedup(measure.arm_fn(spec, "fused", cfg), unfused, rot)
        pairs.append({"config": cfg, "speedup": speedup, "fused_us": t_fused.median_us,
                      "unfused_us": t_unfused.median_us})
    # Decode attention has no cuBLAS arm: its unfused arm (SDPA) is the only baseline.
    cublas = run_trial(problem, "cublas", None, device, rot, task["seed"]).median_us if spec.cublas else None
    unfused_alone = run_trial(problem, "unfused", None, device, rot, task["seed"])
    caps = ceilings()
    floor = measure.floor_us(spec, m, n, k, dtype, device, *caps) if caps else None
    unfused_reason = None if unfused_alone.median_us is not None else unfused_alone.reason or unfused_alone.status
    return {"pairs": pairs, "cublas_us": cublas, "unfused_us": unfused_alone.median_us, "floor_us": floor,
            "unfused_reason": unfused_reason}


class Worker:
    """A restartable child process that runs measurement tasks one at a time."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.timeout_s = timeout_s
        self._proc = None
        self._conn = None
        self.restarts = 0
        self._starting = threading.Lock()
        self._sent: tuple | None = None  # (time.monotonic() of the send, its error or None) until collected
        self.started_at: float | None = None  # time.monotonic() when the current child was asked to start
        # The first request of this object: (seconds from its child's start to the request, seconds
        # the request took), which the worker's log shows; a child still importing torch or opening
        # its CUDA context answers late.
        self.first_request: tuple[float, float] | None = None
        # Seconds from the first child's start until it had imported torch and opened its CUDA context.
        self.ready_s: float | None = None

    def _start(self) -> None:
        ctx = process_context()
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child_main, args=(child, dict(os.environ)), daemon=True,
                                 name="kernel-search-worker")
        # Before start(): a child forked from a warm server may be ready before start() returns (its note
        # then read as ready before it started, a negative ready_s, on a CPU CI run).
        self.started_at = time.monotonic()
        with sigint_ignored():
            self._proc.start()
        from tuner import trace

        trace.event("child started", child_pid=self._proc.pid)
        child.close()
        self._conn = parent

    def _kill(self) -> None:
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(timeout=10)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None
        self._sent = None  # a task in flight died with the child
        self.restarts += 1

    def start(self) -> None:
        """Start the child now (it imports torch and opens its CUDA context in the background) rather
        than on the first request: a tune does its other start-up work meanwhile. Safe from a second
        thread (start_in_background): a request waits for a start under way."""
        with self._starting:
            if self._proc is None or not self._proc.is_alive():
                self._start()

    def request(self, task: dict, timeout_s: float | None = None) -> dict:
        """Send one task; returns {"ok": True, "result": ...} or {"ok": False, "error": reason}.
        Never raises for what happens in the child: a hang or a crash is an error reply."""
        self.submit(task)
        return self.collect(timeout_s)

    def submit(self, task: dict) -> None:
        """Send one task and return at once: the child works on it while the caller does other work
        (the tuner stores the last result and asks for the next config). collect() takes the answer;
        one task at a time."""
        if self._sent is not None:
            raise RuntimeError("the child's answer to the last task was not collected")
        self.start()
        t0 = time.monotonic()
        try:
            self._conn.send(task)
            self._sent = (t0, None)
        except (BrokenPipeError, ConnectionResetError, OSError) as exc:
            self._sent = (t0, exc)  # collect() reports the child as dead

    def collect(self, timeout_s: float | None = None) -> dict:
        """The answer to the task submit() sent, waiting for it: request()'s reply. The timeout counts
        from the send."""
        if self._sent is None:
            raise RuntimeError("no task was submitted")
        (t0, send_error), self._sent = self._sent, None
        timeout = timeout_s or self.timeout_s
        try:
            if send_error is not None:
                raise send_error
            while True:
                if not self._conn.poll(max(0.0, timeout - (time.monotonic() - t0))):
                    self._kill()
                    return {"ok": False, "error": f"hang: no answer in {timeout:.0f} s; worker killed and restarted"}
                reply = self._conn.recv()
                if "ready_at" not in reply:
                    break
                if self.ready_s is None:  # the child's start-up note, sent before any answer
                    self.ready_s = reply["ready_at"] - self.started_at
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
            code = self._proc.exitcode if self._proc is not None else None
            if self._proc is not None:
                self._proc.join(timeout=5)
                code = self._proc.exitcode
            self._kill()
            return {"ok": False, "error": f"worker died (exit code {code}) after {time.monotonic() - t0:.1f} s"}
        if self.first_request is None:
            self.first_request = (t0 - self.started_at, time.monotonic() - t0)
        if reply.get("restart"):
            self._kill()
        return reply

    def close(self, wait: bool = True) -> None:
        """End the child: asked to exit, or (wait=False, its results all stored) killed at once, which
        spares the tune the seconds a CUDA context takes to tear down. A start under way (from
        start_in_background's thread) is waited for first."""
        with self._starting:
            self._close(wait)

    def _close(self, wait: bool) -> None:
        if not wait and self._proc is not None:
            self._proc.kill()
            self._proc.join(timeout=10)
        if self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(None)
                self._proc.join(timeout=10)
            except (BrokenPipeError, OSError):
                pass
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
        self._proc = self._conn = None
        self._sent = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is KeyboardInterrupt and self._proc is not None:
            self._kill()  # Ctrl-C: the trial it is running is discarded anyway; do not wait for it
        self.close()
