"""`kernel-search worker`: join a tune from this GPU (or another host) and work its queue until done."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import DbOption, interpreter_needed, open_store, user_errors


@user_errors
def worker(
    db: DbOption = None,
    batch: Annotated[int, typer.Option(min=1, help="Configs asked and compiled together.")] = 8,
    seed: Annotated[int, typer.Option(help="Sampler seed.")] = 0,
    seconds: Annotated[float | None, typer.Option(min=1, help="Stop starting new batches after this many "
                                                  "seconds (the studies stay queued for others).")] = None,
    share: Annotated[bool, typer.Option(help="When no study is free, help measure one another worker holds.")] = True,
    wait: Annotated[float, typer.Option(min=0, help="Seconds to wait for studies when the queue is empty at the "
                                        "start (a worker started before the tune that queues them).")] = 0.0,
):
    """Work the queue of studies that `kernel-search tune` put in the database, on this machine's GPU, until
    none of this GPU's kind is left. Start one per GPU (CUDA_VISIBLE_DEVICES) on any host that reaches the
    database (PostgreSQL: `--db postgresql://user@host/db`). Only GPUs with the same fingerprint share
    studies. A worker that dies loses nothing it stored; another worker takes its study over once its
    lease runs out."""
    import time

    on_cpu = interpreter_needed()  # first: before the kernels are imported
    from kernel_space.fingerprint import current_fingerprint
    from tuner.compile import shutdown
    from tuner.distributed import Callbacks, work
    from tuner.search import TuneOptions
    from tuner.tune import device_limits

    store = open_store(db)
    opts = TuneOptions(batch=batch, seed=seed)
    if seconds is not None:
        opts.deadline = time.monotonic() + seconds
    device_limits(opts)
    fp = current_fingerprint()
    where = "the CPU (Triton's interpreter)" if on_cpu else fp["device_name"]
    typer.echo(f"worker on {where}: working the queue of {store!r}", err=True)

    from kernel_space.attention_shape import describe

    def done(o):
        arm = f"{o.winner_arm} {o.median_us:.1f} us x{o.speedup:.2f}" if o.winner_arm else f"no winner: {o.note}"
        typer.echo(f"{o.op:21s} {describe(o.op, o.m):7s} {arm} ({o.trials} trials)", err=True)

    try:
        report = work(store, fp, opts, Callbacks(on_done=done), share=share, wait_s=wait)
    except KeyboardInterrupt:
        # Its study went back to the queue; every trial it finished is stored.
        typer.echo("interrupted: run the same command again to go on", err=True)
        raise typer.Exit(130) from None
    finally:
        shutdown()
    typer.echo(f"worker done: {len(report.outcomes)} studies finished, {report.helped} shared", err=True)


def register(app: typer.Typer) -> None:
    app.command()(worker)
