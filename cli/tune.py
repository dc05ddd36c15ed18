"""`kernel-search tune`: search every fused op of a model at every M bucket on this GPU (decode
attention at every batch and context bucket)."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from shlex import quote
from typing import Annotated

import typer

from cli import step_check
from cli.common import (
    DbOption,
    ctrl_c_kept,
    fail,
    finite,
    interpreter_needed,
    model_ops,
    open_store,
    user_errors,
)
from tuner import trace

# The largest M bucket a tune accepts: DESIGN.md's buckets end at prefill 4096 "and up"; 100,000,000
# tried to allocate the whole input and failed only after the study had started.
MAX_BUCKET = 65_536
# How long a worker that `tune --gpus` started waits for the studies it plans meanwhile.
WORKER_WAIT_S = 120.0


@user_errors
def tune(
    model: Annotated[str, typer.Option(help="A preset (qwen3-0.6b, qwen3-8b, ..., qwen3-tiny) or a path to a "
                                       "Hugging Face config.json / model folder, stored under the config's "
                                       "_name_or_path, else its folder's name (another JSON file: its "
                                       "own name).")] = "qwen3-0.6b",
    op: Annotated[list[str] | None, typer.Option("--op", help="Only these ops (repeatable); default all, "
                                                 "decode_attention included.")] = None,
    buckets: Annotated[str, typer.Option(help="M buckets: all (default: decode 1..256 and prefill 512..4096, so "
                                         "a prompt's M runs a tuned config), decode, prefill, or a comma list such "
                                         "as 1,2,4,16. Past the last tuned bucket the model runs unfused.")] = "all",
    contexts: Annotated[str | None, typer.Option(help="decode_attention's context buckets (KV cache slots), a comma "
                                                 "list. Default: 256,1024,4096,16384,32768 below the model's "
                                                 "max_position_embeddings, then that maximum (64 without a GPU). A "
                                                 "(batch, context) whose whole KV cache passes half the GPU memory "
                                                 "is not tuned; past the last tuned one the default plan runs.")]
    = None,
    dtype: Annotated[str, typer.Option(help="bfloat16, float16 or float32.")] = "bfloat16",
    trials: Annotated[int, typer.Option(min=1, help="Distinct configs tried per (op, bucket) study, the enqueued "
                                        "baseline and defaults included (a repeated proposal is free). A re-run "
                                        "tops studies up to this number.")] = 40,
    seconds: Annotated[float | None, typer.Option(min=1, callback=finite,
                                                  help="Stop asking for new configs after this many seconds; "
                                                       "unreached studies are listed.")] = None,
    batch: Annotated[int, typer.Option(min=1, help="Configs in flight at once: asked, compiling or waiting "
                                                   "to be timed; also the compile processes a GPU's worker runs. "
                                                   "More tunes faster on a host with the cores, but the sampler "
                                                   "then proposes with less known (16 on an H200: ~25% faster, "
                                                   "winners 2-4% less good).")] = 8,
    seed: Annotated[int, typer.Option(min=0, max=2**31 - 1, help="Sampler seed.")] = 0,
    allow_cpu: Annotated[bool, typer.Option("--allow-cpu", help="Tune a non-tiny model without a GPU, through "
                                            "Triton's interpreter (very slow; the times mean nothing).")] = False,
    gpus: Annotated[str | None, typer.Option(help="Tune on several GPUs of this host: 'all' or a list such as "
                                             "0,1,3; one worker process per GPU shares the studies (more hosts "
                                             "join with `kernel-search worker`).")] = None,
    worker_logs: Annotated[str | None, typer.Option(help="With --gpus: keep each worker's log (timestamped: its "
                                                    "start-up, studies and exit) in this folder as "
                                                    "worker-gpu0.log, worker-gpu1.log, ... beside the tune's "
                                                    "tune.log. Default: a temporary folder, deleted.")]
    = None,
    no_bench: Annotated[bool, typer.Option("--no-bench", help="Skip the end-to-end check after tuning.")] = False,
    bench_batches: Annotated[str | None, typer.Option(help="Batch sizes the end-to-end check times (tuned "
                                                      "buckets, comma list). Default: the tuned decode buckets "
                                                      "(M <= 256).")] = None,
    db: DbOption = None,
):
    """Tune a model's fused ops on this GPU with Optuna: every (op, M bucket) is one study (decode attention:
    every (batch, context) bucket), every trial is checked against the reference and stored, and each
    winner is confirmed against the unfused path (attention's: PyTorch SDPA). Interrupt any time (Ctrl-C
    or kill): running it again resumes where it stopped.

    Then, on a GPU, the end-to-end check: the model's decode step (CUDA graph, random weights, a few
    seconds an arm) with the new table, with none (unfused) and with the table exported before the tune.
    The new table runs twice, its residual stream in the model dtype and in fixed point; the faster is
    its stream at that batch, which `export` writes into the table. Where the new table's step is
    slower, `export` writes the faster arm's choices at that batch. Each
    decode attention bucket is also timed in the step, over two caches it serves, against the default
    plan; where the plan is faster at either, `export` writes the plan there."""
    if worker_logs is not None and gpus is None:
        fail("--worker-logs goes with --gpus (a tune without it runs in this process: its output is here)")
    trace.event("tune starting")
    # With --gpus the workers start first of all: their imports (seconds each) overlap this process's.
    # Each is given the plan, and queues its GPU kind's studies as soon as it is ready (so does this
    # process, for every kind, as soon as it is): none waits for the other.
    workers = None
    if gpus is not None:
        spec = PlanSpec(uuid.uuid4().hex, model, op or [], buckets, contexts, dtype, trials)
        workers = _Workers(db, gpus, batch, seed, seconds, worker_logs, spec)
    try:
        _tune(model, op, buckets, contexts, dtype, trials, seconds, batch, seed, allow_cpu, gpus, no_bench,
              bench_batches, db, workers)
    finally:
        if workers is not None:
            workers.close()


def _tune(model, op, buckets, contexts, dtype, trials, seconds, batch, seed, allow_cpu, gpus, no_bench,
          bench_batches, db, workers) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tuner.launch import init_cuda_in_background

    # The CUDA driver starts while torch is imported: this process tunes, or (--gpus) reads every GPU's
    # fingerprint before it can queue the studies its workers wait for.
    init_cuda_in_background()
    on_cpu = interpreter_needed()  # first: before the kernels are imported (triton.jit reads it then)
    config, bucket_list, context_list = _resolve(model, buckets, contexts, dtype, on_cpu)
    checked = step_check.bench_batches(bench_batches, list(bucket_list))
    from kernel_space.attention_shape import describe
    from tuner.distributed import study_keys
    from tuner.search import TuneOptions
    from tuner.tune import tune_model

    ops = model_ops(config, op, "tune")
    if on_cpu:
        if config.name != "qwen3-tiny" and not allow_cpu:
            fail(f"no CUDA GPU here: tuning {config.name} needs one (use --model qwen3-tiny to try the loop on "
                 "the CPU, or --allow-cpu)")
        dtype = _interpreter_dtype(dtype)
    if not study_keys(config, ops, list(bucket_list), dtype, context_list):  # sized to an 80 GB card
        fail("nothing to tune: decode_attention's batch is a decode bucket (<= 256) and none of --buckets is one")
    store = open_store(db, create=True)
    opts = TuneOptions(trials=trials, batch=batch, seed=seed)
    skip = step_check.skip_reason(no_bench, on_cpu, checked)
    if gpus is not None:  # the workers' start-up overlaps the plan
        _tune_gpus(store, config, ops, list(bucket_list), dtype, opts, workers, checked, skip, context_list)
        return
    if on_cpu:
        typer.echo(f"no CUDA GPU: the kernels run in Triton's interpreter on the CPU, in {dtype}; the times "
                   "below exercise the search loop and say nothing about a GPU", err=True)
    planned = len(study_keys(config, ops, list(bucket_list), dtype, context_list, _gpu_memory()))
    fp, previous = _before_tuning(store, config.name, dtype, skip)
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[best]}"))
    with Progress(*columns, console=console) as progress:
        overall = progress.add_task(f"{config.name} ({dtype})", total=planned, best="")
        current = {"task": None}

        def on_study(op_name, m, total):
            if current["task"] is not None:
                progress.remove_task(current["task"])
            current["task"] = progress.add_task(f"  {op_name} {describe(op_name, m)}", total=total, best="")

        def on_trial(op_name, m, done, total, best):
            progress.update(current["task"], completed=done, best=f"best {best:.1f} us" if best else "")
            check()

        def on_done(o):
            check()
            progress.advance(overall)
            where = f"{o.op:21s} {describe(o.op, o.m):7s}"
            if o.winner_arm:
                progress.console.print(
                    f"{where} {o.winner_arm:7s} {o.median_us:8.1f} us  unfused {o.unfused_us:8.1f} us"
                    f"  x{o.speedup:.2f}  ({o.trials} trials, {o.failed} failed) {o.note}")
            else:
                progress.console.print(f"{where} no winner: {o.note}")

        try:
            with ctrl_c_kept() as check:
                report = tune_model(store, config, ops, list(bucket_list), dtype, opts, seconds,
                                    on_study=on_study, on_trial=on_trial, on_done=on_done, contexts=context_list)
        except KeyboardInterrupt:
            report = None
    if report is None:
        # Every finished trial is stored as it ends; the interrupted one is re-run on resume.
        typer.echo("interrupted: run the same command again to resume", err=True)
        raise typer.Exit(130)
    lost = print_summary(report, config.name)
    if skip:
        typer.echo(step_check.skipped_line(skip))
    else:
        step_check.run_check(store, config, dtype, fp, previous, checked)
    if any(o.winner_arm for o in report.outcomes):
        from kernel_space.fingerprint import current_fingerprint
        from storage.store import fingerprint_key

        for line in _next_hints(store, config.name, dtype, db, [fingerprint_key(fp or current_fingerprint())]):
            typer.echo(line)
    if lost:
        raise typer.Exit(1)


def _interpreter_dtype(dtype: str) -> str:
    """The dtype tuned in Triton's interpreter: float16 for bfloat16, whose tl.dot the interpreter computes
    wrongly (measured, triton 3.6)."""
    return "float16" if dtype == "bfloat16" else dtype


def _resolve(model: str, buckets: str, contexts: str | None, dtype: str, on_cpu: bool):
    """(the model's config, the M buckets, decode attention's contexts) from tune's options, checked."""
    from kernel_space.buckets import parse_buckets
    from qwen3.config import resolve_model

    config = resolve_model(model)
    bucket_list = parse_buckets(buckets)
    context_list = _contexts(contexts, on_cpu, config)
    _check_options(bucket_list, dtype)
    return config, bucket_list, context_list


@dataclass(frozen=True)
class PlanSpec:
    """What `tune --gpus` tunes, as its options say, with the run's id: each worker it starts gets it
    (`worker --plan`, JSON) and queues its own GPU kind's studies (tuner.distributed.plan) once it is
    ready, rather than waiting for the tune to have queued them. The run's id makes the second of the
    two to come leave a study as the first queued it (storage.queue.enqueue's `plan`)."""

    id: str
    model: str
    ops: list[str]
    buckets: str
    contexts: str | None
    dtype: str
    trials: int

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PlanSpec:
        return cls(**json.loads(text))

    def resolved(self, on_cpu: bool = False):
        """The options checked as `tune` checks them (a bad one fails here, before any database is made),
        as a function of (store, fp) that queues this plan's studies for the GPU kind `fp` (a worker's
        own; on_cpu: Triton's interpreter, planned as `tune` plans for it) and returns their study ids."""
        from tuner import distributed

        config, bucket_list, context_list = _resolve(self.model, self.buckets, self.contexts, self.dtype, on_cpu)
        ops = model_ops(config, self.ops or None, "tune")
        dtype = _interpreter_dtype(self.dtype) if on_cpu else self.dtype
        return lambda store, fp: distributed.plan(store, [fp], config, ops, list(bucket_list), dtype, self.trials,
                                                  context_list, plan_id=self.id)


def _check_options(bucket_list, dtype: str) -> None:
    """One-line errors for options that cannot go together or cannot run, before anything is written."""
    if bucket_list[-1] > MAX_BUCKET:
        fail(f"bucket {bucket_list[-1]} is above {MAX_BUCKET} tokens: no decode or prefill batch is that large "
             "(the inputs alone would not fit in memory)")
    if dtype not in ("bfloat16", "float16", "float32"):
        fail(f"unknown dtype {dtype!r}: use bfloat16, float16 or float32")


def _contexts(text: str | None, on_cpu: bool, config) -> tuple[int, ...] | None:
    """decode_attention's context buckets from --contexts; None: the model's defaults (study_keys). The
    interpreter gets INTERPRETER_CONTEXTS (a 32k cache would take it hours)."""
    from kernel_space.attention_shape import INTERPRETER_CONTEXTS, parse_contexts

    if text is None:
        return INTERPRETER_CONTEXTS if on_cpu else None
    values = parse_contexts(text)
    if values[-1] > config.max_position_embeddings:
        fail(f"context {values[-1]} exceeds {config.name}'s max_position_embeddings "
             f"{config.max_position_embeddings}: no cache of the model is that long")
    return values


def _gpu_memory() -> int:
    """This process's GPU memory in bytes (0 without one): decode attention's buckets are sized to it,
    as tune_model sizes them (its fingerprint's total_memory)."""
    import torch

    return torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else 0


def _before_tuning(store, model: str, dtype: str, skip: str | None):
    """(this GPU's fingerprint, the table export would write now) for the end-to-end check; (None, None)
    when it is skipped."""
    if skip:
        return None, None
    from kernel_space.fingerprint import current_fingerprint
    from tuner.step_bench import previous_table

    fp = current_fingerprint()
    return fp, previous_table(store, model, fp, dtype)


def _next_hints(store, model: str, dtype: str, db: str | None, keys: list[str]) -> list[str]:
    """The export command for this tune, quoted for the shell (a model named after its folder may hold
    spaces). Where the database holds the model's winners on other fingerprints too (another GPU kind,
    or an imported table of older kernels), export needs --gpu: one command per fingerprint this tune
    ran on (`keys`), each writing its own file."""
    from storage.engine import display_url
    from storage.export import winner_fingerprints

    options = ("" if dtype == "bfloat16" else f" --dtype {dtype}") + (f" --db {quote(display_url(db))}" if db else "")
    if len(winner_fingerprints(store, model, dtype)) <= 1:
        return [f"next: kernel-search export --model {quote(model)}{options} -o table.json"]
    keys = sorted(set(keys))
    return [f"next: kernel-search export --model {quote(model)}{options} --gpu {key} -o "
            f"{'table.json' if len(keys) == 1 else f'table-{key}.json'}" for key in keys]


def print_summary(report, model: str) -> bool:
    """What was tuned and which studies found no winner; returns whether any found none (the caller
    exits with status 1 then, after the end-to-end check and the next command)."""
    from kernel_space.attention_shape import describe

    fused = sum(1 for o in report.outcomes if o.winner_arm == "fused")
    unfused = sum(1 for o in report.outcomes if o.winner_arm == "unfused")
    lost = [o for o in report.outcomes if not o.winner_arm]
    typer.echo(f"tuned {len(report.outcomes)} studies of {model} in {report.wall_s:.0f} s: fused wins {fused}, "
               f"unfused {unfused}" + (f", no winner {len(lost)}" if lost else ""))
    if report.skipped:
        typer.echo("not reached (time budget): " + ", ".join(f"{o} {describe(o, m)}" for o, m in report.skipped))
    if lost:
        typer.echo("no winner (those buckets will run the unfused path): " + "; ".join(
            f"{o.op} {describe(o.op, o.m)}: {o.note or 'every trial failed'}" for o in lost), err=True)
    return bool(lost)


class _Workers:
    """The worker processes of `tune --gpus`, started before anything heavy is imported (tuner.launch):
    their start-up overlaps this process's imports, checks and plan. close() ends those still running."""

    def __init__(self, db: str | None, gpus_text: str, batch: int, seed: int, seconds: float | None,
                 worker_logs: str | None, spec: PlanSpec):
        import tempfile

        from storage.url import resolve_url
        from tuner.launch import parse_gpus, spawn_workers, visible_gpu_count

        self.t0 = time.monotonic()
        self.db = db
        self.gpus = parse_gpus(gpus_text, visible_gpu_count())
        if worker_logs is not None:
            try:
                os.makedirs(worker_logs, exist_ok=True)
            except OSError as exc:
                fail(f"--worker-logs {worker_logs}: cannot make that folder ({exc.strerror})")
        self._tmp = None if worker_logs is not None else tempfile.TemporaryDirectory(prefix="kernel-search-workers-")
        self.logs = worker_logs if worker_logs is not None else self._tmp.name
        self.spec = spec
        self.procs = spawn_workers(resolve_url(db), self.gpus, batch, seed, seconds, self.logs,
                                   wait_s=WORKER_WAIT_S, plan=spec.to_json())
        self.say = _stamped(os.path.join(self.logs, "tune.log"))
        self.say(f"{len(self.procs)} workers started")

    def failures(self) -> list[str]:
        out = []
        for gpu, proc, _ in self.procs:
            if proc.returncode:
                log = Path(self.logs, f"worker-gpu{gpu}.log").read_text().strip().splitlines()
                tail = log[-1:] or ["no output"]
                out.append(f"worker on GPU {gpu} exited with {proc.returncode}: {tail[0]}")
        return out

    def stop(self) -> None:
        """End the workers still running (all are done when the tune ends well)."""
        from tuner.launch import stop

        stop(self.procs)

    def close(self) -> None:
        """stop(), then remove the temporary log folder (a --worker-logs folder stays)."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


def _tune_gpus(store, config, ops, buckets, dtype, opts, workers: _Workers, checked: list[int],
               skip: str | None, contexts: tuple[int, ...] | None) -> None:
    """Queue the studies for every GPU kind named (the workers, started already, wait for them), show
    one progress bar over all of them, and summarize from the database. Then the end-to-end check of
    `checked` batches (unless there is a reason to skip it), once, on the first GPU named."""
    from tuner import distributed
    from tuner.step_bench import previous_table

    trace.event("tune: store open")
    gpus, say = workers.gpus, workers.say
    try:
        fps = distributed.gpu_fingerprints(gpus)
        trace.event("tune: fingerprints")
        previous = None if skip else previous_table(store, config.name, fps[gpus[0]], dtype)
        ids = distributed.plan(store, list(fps.values()), config, ops, buckets, dtype, opts.trials, contexts,
                               plan_id=workers.spec.id)
        trace.event("tune: studies queued")
        say(f"{len(ids)} studies queued")
        _watch(store, ids, workers.procs, f"{config.name} ({dtype}) on {len(gpus)} GPUs")
        say("workers done")
        trace.event("tune: workers done")
    except KeyboardInterrupt:
        typer.echo("interrupted: run the same command again to resume", err=True)
        raise typer.Exit(130) from None
    finally:
        workers.stop()
    failed = workers.failures()
    for line in failed:
        typer.echo(line, err=True)
    done, configs = distributed.study_progress(store, ids)
    typer.echo(f"tuned {done} of {len(ids)} studies of {config.name} on GPUs {','.join(map(str, gpus))} in "
               f"{time.monotonic() - workers.t0:.0f} s ({configs} configs measured)")
    if failed or done < len(ids):
        fail("some studies are unfinished: run the same command again to resume them")
    if skip:
        typer.echo(step_check.skipped_line(skip))
    else:
        step_check.run_check(store, config, dtype, fps[gpus[0]], previous, checked, device=gpus[0])
    from storage.store import fingerprint_key

    for line in _next_hints(store, config.name, dtype, workers.db, [fingerprint_key(fps[gpu]) for gpu in gpus]):
        typer.echo(line)
    trace.event("tune: done")


def _stamped(path: str):
    """say(text): a line of `path` stamped with the UTC time to the millisecond, as the workers' logs."""
    from cli.worker import stamp

    def say(text: str) -> None:
        with open(path, "a") as log:
            log.write(f"{stamp()} {text}\n")

    return say


def _watch(store, ids, procs, title) -> None:
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tuner import distributed

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[configs]} configs"))
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(title, total=len(ids), configs=0)
        while any(proc.poll() is None for _, proc, _ in procs):
            done, configs = distributed.study_progress(store, ids)
            progress.update(task, completed=done, configs=configs)
            time.sleep(0.25)
        done, configs = distributed.study_progress(store, ids)
        progress.update(task, completed=done, configs=configs)


def register(app: typer.Typer) -> None:
    app.command()(tune)
