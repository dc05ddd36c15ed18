"""`kernel-search worker`: join a tune from this GPU (or another host) and work its queue until done."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated

import typer

from cli.common import DbOption, ctrl_c_kept, finite, interpreter_needed, open_store, user_errors
from tuner import trace


@user_errors
def worker(
    db: DbOption = None,
    batch: Annotated[int, typer.Option(min=1, help="Configs in flight at once: asked, compiling or waiting "
                                                   "to be timed.")] = 8,
    seed: Annotated[int, typer.Option(help="Sampler seed.")] = 0,
    seconds: Annotated[float | None, typer.Option(min=1, callback=finite,
                                                  help="Stop asking for new configs after this many seconds (the "
                                                       "studies stay queued for others).")] = None,
    share: Annotated[bool, typer.Option(help="When no study is free, help measure one another worker holds.")] = True,
    wait: Annotated[float, typer.Option(min=0, callback=finite,
                                        help="Seconds to wait for studies when the queue is empty at the start (a "
                                             "worker started before the tune that queues them).")] = 0.0,
    exit_at_once: Annotated[bool, typer.Option(hidden=True, help="Once done, end the process without tearing "
                                               "down torch and its CUDA context (tune --gpus waits for it).")] = False,
    plan: Annotated[str | None, typer.Option(hidden=True, help="What `tune --gpus` tunes (cli.tune.PlanSpec's "
                                             "JSON): create the database and queue this GPU kind's studies at "
                                             "once, rather than wait for the tune to.")] = None,
):
    """Work the queue of studies that `kernel-search tune` put in the database, on this machine's GPU, until
    none of this GPU's kind is left. Start one per GPU (CUDA_VISIBLE_DEVICES) on any host that reaches the
    database (PostgreSQL: `--db postgresql://user@host/db`). Only GPUs with the same fingerprint share
    studies. A worker that dies loses nothing it stored; another worker takes its study over once its
    lease runs out."""
    import time

    say(f"worker starting (pid {os.getpid()})")
    trace.event("worker starting")
    phases = _Phases()
    from tuner.compile import shutdown, start_in_background, warm_report
    from tuner.launch import init_cuda_in_background, visible_gpu_count
    from tuner.worker import Worker

    # Start-up is the fixed cost that caps a tune's speedup on many GPUs. The benchmarking child opens
    # its CUDA context and one batch of compile processes (forked from a server that imports torch and
    # the kernels once; they compile ahead of time, with no context) load the compiler while this
    # process imports torch and the rest and then waits for the database (a tune creates it while its
    # workers start). Without a GPU the child must see TRITON_INTERPRET, which interpreter_needed sets:
    # it starts after that.
    child = Worker()
    gpu = visible_gpu_count() > 0  # NVML's answer: torch is not imported yet
    starting = start_in_background(child, batch, batch, cuda=True) if gpu else None  # TuneOptions.pool_workers
    if gpu:
        init_cuda_in_background()  # the driver starts while the imports below run
    phases.mark("processes started")
    try:
        from storage.engine import parse_url, resolve_url

        parse_url(resolve_url(db))  # a malformed URL fails here: the processes just started are ended
        phases.mark("URL")
        on_cpu = interpreter_needed()  # before the kernels are imported
        phases.mark("torch")
        if on_cpu and gpu:  # NVML saw a GPU that CUDA cannot use: start again, in the interpreter
            starting.join()
            child.close(wait=False)
            shutdown(kill=True)
        from kernel_space.attention_shape import describe
        from kernel_space.fingerprint import current_fingerprint
        from tuner.distributed import Callbacks, work
        from tuner.search import TuneOptions
        from tuner.tune import device_limits

        phases.mark("kernels and tuner")
        opts = TuneOptions(batch=batch, seed=seed)
        if seconds is not None:
            opts.deadline = time.monotonic() + seconds
        device_limits(opts)
        phases.mark("GPU limits")
        fp = current_fingerprint()
        phases.mark("fingerprint")
        # A database that cannot be opened fails here: the processes just started are ended.
        if plan is None:
            _wait_for_database(db, wait)
            store = open_store(db)
        else:
            from cli.tune import PlanSpec

            queue_plan = PlanSpec.from_json(plan).resolved(on_cpu)  # checked before the database is made
            store = open_store(db, create=True)
            queue_plan(store, fp)
        phases.mark("database")
    except BaseException:
        if starting is not None:
            starting.join()  # then nothing starts after the processes are ended
        child.close(wait=False)
        shutdown(kill=True)
        raise
    where = "the CPU (Triton's interpreter)" if on_cpu else fp["device_name"]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    trace.event("worker: queue open")
    say(f"worker on {where}, {cpus} CPUs: working the queue of {store!r} ({phases})")
    measured = []

    def study(op, m, budget, shared):
        say(f"{'helping with' if shared else 'claimed'} {op} {describe(op, m)} ({budget} configs)")

    def trial(op, m, done, total, best):
        check()
        if not measured:
            # Where the first result's wait went: the benchmarking child's start-up, or its first task.
            timing, ready, pool = child.first_request, child.ready_s, warm_report()
            how = (f": sent to the benchmarking child {timing[0]:.1f} s after it started, answered in "
                   f"{timing[1]:.1f} s" if timing else "")
            how += f"; the child was ready {ready:.1f} s after its start" if ready is not None else ""
            how += f"; compile processes {pool}" if pool else ""
            say(f"first config measured ({op} {describe(op, m)}){how}")
        measured.append(1)

    def done(o):
        check()
        arm = f"{o.winner_arm} {o.median_us:.1f} us x{o.speedup:.2f}" if o.winner_arm else f"no winner: {o.note}"
        say(f"{o.op:21s} {describe(o.op, o.m):7s} {arm} ({o.trials} trials{spent_text(o.spent)})")

    finished = False
    try:
        with ctrl_c_kept() as check:
            report = work(store, fp, opts, Callbacks(on_study=study, on_trial=trial, on_done=done), share=share,
                          wait_s=wait, make_worker=lambda: contextlib.nullcontext(child))
        finished = True
    except KeyboardInterrupt:
        # Its study went back to the queue; every trial it finished is stored.
        say("interrupted: run the same command again to go on")
        raise typer.Exit(130) from None
    finally:
        # Done with the queue: every result is stored, so the child and the compile processes are ended
        # at once rather than each closing its CUDA context (seconds at the end of every tune).
        child.close(wait=not finished)
        shutdown(kill=finished)
    trace.event("worker: done")
    say(f"worker done: {len(report.outcomes)} studies finished, {report.helped} shared")
    if exit_at_once:
        exit_now()


def exit_now() -> None:
    """End the process at once (a worker of `tune --gpus` done with its queue): everything is stored and
    the child and compile processes are gone; what is left is seconds of interpreter and CUDA teardown
    that the tune would wait for. multiprocessing's own exit finalizers run first (as at a normal exit,
    and at once): they unlink the compile pool's semaphores, which the resource tracker would otherwise
    report as leaked ("There appear to be 5 leaked semaphore objects") at the end of the worker's log."""
    import multiprocessing.util

    with contextlib.suppress(Exception):
        multiprocessing.util._run_finalizers(0)  # what multiprocessing runs first at a normal exit
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class _Phases:
    """Seconds each step of a worker's start-up took, for its log: 'start-up 9.1 s: database 0.3,
    torch 3.2, ...'."""

    def __init__(self):
        import time

        self._clock = time.monotonic
        self._start = self._last = self._clock()
        self._steps: list[tuple[str, float]] = []

    def mark(self, name: str) -> None:
        trace.event(f"start-up: {name}")
        now = self._clock()
        self._steps.append((name, now - self._last))
        self._last = now

    def __str__(self) -> str:
        steps = ", ".join(f"{name} {seconds:.1f}" for name, seconds in self._steps)
        return f"start-up {self._last - self._start:.1f} s: {steps}"


def spent_text(spent: dict) -> str:
    """A study's seconds by part for its log line (tuner.search.SPENT_PARTS), e.g. '; s: open 0.21,
    ask 0.93, compile wait 1.80, child wait 1.52, store 0.61, confirm 0.40'; empty when none."""
    return "; s: " + ", ".join(f"{part} {seconds:.2f}" for part, seconds in spent.items()) if spent else ""


def _wait_for_database(db: str | None, wait: float) -> None:
    """A worker started with --wait before its tune may find no SQLite file yet: it waits up to `wait`
    seconds for the tune to create it (then open_store says what is missing)."""
    import time

    from storage.engine import parse_url, resolve_url, sqlite_path

    path = sqlite_path(parse_url(resolve_url(db)))
    deadline = time.monotonic() + wait
    while path is not None and not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def say(text: str) -> None:
    """One line of the worker's log (stderr), stamped with the UTC time to the millisecond: the logs of
    workers on several GPUs and hosts then line up, and show where a tune's time went."""
    typer.echo(f"{stamp()} {text}", err=True)


def stamp() -> str:
    """Now in UTC, to the millisecond, ISO 8601 with a Z."""
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def register(app: typer.Typer) -> None:
    app.command()(worker)
