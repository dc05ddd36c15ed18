"""What every command shares: the --db option, opening the store, one-line user errors, output.

A command module defines its functions and a `register(app)` that adds them; cli/app.py lists
the modules. Wrap a command in @user_errors so that a mistake the user can fix (bad URL, missing
file, unknown model, malformed table) prints one line to stderr and exits 1, not a traceback.
Set KERNEL_SEARCH_DEBUG=1 to get the traceback anyway.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import signal
import sys
import threading
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from storage.url import ENV_VAR

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar=ENV_VAR,
        show_envvar=True,
        help="Database URL (any SQLAlchemy URL, e.g. postgresql://host/ks). Default: sqlite:///kernel_search.db "
        "in the current directory.",
    ),
]
GpuOption = Annotated[
    str | None,
    typer.Option("--gpu", help="A fingerprint key (or its prefix) or part of the device name, e.g. H100."),
]
ModelOption = Annotated[str | None, typer.Option("--model", help="Only shapes of this model, e.g. qwen3-0.6b.")]
OpOption = Annotated[str | None, typer.Option("--op", help="Only this op, e.g. rmsnorm_qkv.")]
MMinOption = Annotated[int | None, typer.Option("--m-min", min=1, help="Only M buckets >= this.")]
MMaxOption = Annotated[int | None, typer.Option("--m-max", min=1, help="Only M buckets <= this.")]
WideOption = Annotated[bool, typer.Option("--wide", help="Every column (GPU, fingerprint, models, shape, dtype, "
                                                         "config) in one table, however wide.")]


def user_error_types() -> tuple:
    """What a command turns into a one-line error: ValueError covers StorageError and TableError,
    SQLAlchemyError a database that fails mid-command (only where SQLAlchemy was imported: nothing else
    raises it, and the CLI does not import it before it must)."""
    sqlalchemy = sys.modules.get("sqlalchemy")
    return (ValueError, OSError) + ((sqlalchemy.exc.SQLAlchemyError,) if sqlalchemy is not None else ())


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an error (driver errors carry SQL and links below it)."""
    exc = getattr(exc, "orig", None) or exc  # SQLAlchemy's wrapper -> the driver's own message
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def finite(value: float | None) -> float | None:
    """A float option's callback: NaN and the infinities are usage errors (exit 2, the option named). Click's
    range checks compare, and whether NaN fails a comparison-based range depends on its version: with the
    click that typer vendors on the GPU image, --temperature nan reached the sampler and CUDA asserted."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def fail(message: str, code: int = 1):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def ctrl_c_kept():
    """Ctrl-C as a KeyboardInterrupt that is not lost. Python raises it wherever the main thread is
    when SIGINT's handler runs; inside a weakref callback or a __del__ (garbage collection, e.g.
    SQLAlchemy's event registry) it is printed as "Exception ignored" and dropped, and the command ran
    on to its end (seen in CI: a tune interrupted after its first study finished all six). Yields
    check(), which raises KeyboardInterrupt if a Ctrl-C came since: the command calls it at its safe
    points (after each trial and study). Outside the main thread (no handler can be set) check() is a
    no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    hit = []

    def on_sigint(signum, frame):
        hit.append(signum)
        raise KeyboardInterrupt

    def check():
        if hit:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, previous)


def user_errors(fn):
    """Turn user_error_types() raised by a command into `error: <one line>` on stderr and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not isinstance(exc, user_error_types()) or os.environ.get("KERNEL_SEARCH_DEBUG"):
                raise
            fail(one_line(exc))

    return wrapper


def open_store(db: str | None, create: bool = False, readonly: bool = False):
    """The Store for --db (None: $KERNEL_SEARCH_DB or the default file). Unless `create`, a SQLite
    file that does not exist is an error: a mistyped path should not answer with an empty database.
    `readonly` (the commands that only read): nothing on disk changes, and a file that is not a
    kernel-search database is refused as it is."""
    from storage import Store
    from storage.engine import StorageError, display_url, foreign_tables, parse_url, resolve_url, sqlite_path

    url = resolve_url(db)
    path = sqlite_path(parse_url(url))
    if not create and path is not None and not path.exists():
        raise StorageError(f"no database at {display_url(url)} (tune or import first, or pass --db)")
    if path is not None and path.exists() and not path.is_file():
        raise StorageError(f"{display_url(url)} names {path}, which is not a file")
    if path is not None and not path.resolve().parent.is_dir():
        raise StorageError(f"no folder {path.resolve().parent} for the database {display_url(url)}")
    foreign = foreign_tables(path) if path is not None and not readonly else []
    if foreign:
        raise StorageError(f"{path} is another application's database (tables {', '.join(foreign[:5])}): "
                           "kernel-search adds no tables to it; pass --db with a new file")
    return Store(url, readonly=readonly)


def write_file(path: Path, text: str) -> None:
    """Write an output file; an OSError names the file (the OS's own message may not)."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OSError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


def console(stderr: bool = False, wide: bool = False):
    """A rich console; 200 columns when not a terminal, so piped tables are not squeezed to 80.
    wide: as many columns as a table needs (nothing cut, lines as long as they get)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 200
    # markup off: model names, reasons and configs are data and may hold "[...]".
    return Console(file=stream, width=10_000 if wide else width, highlight=False, markup=False)


def new_table(title: str, columns: list[str], numeric: set[str]):
    """A rich table for narrow terminals: no vertical rules, and number columns that never wrap or
    shrink (rich narrows the text columns instead)."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    for name in columns:
        if name in numeric:
            table.add_column(name, justify="right", no_wrap=True)
        else:
            table.add_column(name, overflow="fold")
    return table


def group_title(gpu: str, fingerprint: str, models: str, dtype: str) -> str:
    """The heading of one group of rows: which models, dtype and GPU they are about."""
    return f"{models.replace(',', ', ') or '(no model)'} ({dtype}) on {gpu} [{fingerprint}]"


def check_filters(store, gpu: str | None = None, model: str | None = None, op: str | None = None,
                  m_min: int | None = None, m_max: int | None = None) -> None:
    """A filter that can match nothing in this database is a mistake, not an empty answer: an
    unknown model, op or GPU, or an empty M range. StorageError lists what there is."""
    from storage import StorageError
    from storage.queries import known_gpus, known_models, known_ops

    if m_min is not None and m_max is not None and m_min > m_max:
        raise StorageError(f"--m-min {m_min} is above --m-max {m_max}: no M bucket is both")
    for name, value, known in (("model", model, known_models), ("op", op, known_ops)):
        if value is not None:
            names = known(store)
            if value not in names:
                raise StorageError(f"unknown {name} {value!r}; {name}s in the database: "
                                   f"{', '.join(names) or 'none yet'}")
    if gpu is not None and not known_gpus(store, gpu):
        listed = ", ".join(f"{name} [{key}]" for name, key in known_gpus(store)) or "none yet"
        raise StorageError(f"no GPU matches {gpu!r} (a fingerprint key, its prefix or part of the device name); "
                           f"GPUs in the database: {listed}")


def op_cell(row) -> str:
    """A row's op for a table cell: decode attention's names its context, 'decode_attention ctx=4k' (k:
    1,024 slots; other lengths in full), its M column holding the batch (storage.queries reads both out
    of its key). Short, so that the narrow tables keep to 100 columns at 40,960 slots."""
    import pandas as pd  # loaded already: the row comes from a storage.queries frame

    context = getattr(row, "context", None)
    return op_label(row.op, None if context is None or pd.isna(context) else int(context))


def op_label(op: str, context: int | None = None) -> str:
    """'decode_attention ctx=4k' for decode attention over `context` slots, else the op's name."""
    if context is None:
        return op
    return f"{op} ctx={context // 1024}k" if context % 1024 == 0 else f"{op} ctx={context}"


def shape_cell(row) -> str:
    """A row's shape: 'N x K' of the weight, or decode attention's heads ('16/8 heads x 128': query
    heads / KV heads, and head_dim) read out of its N and K keys."""
    from kernel_space.attention_shape import ATTENTION_OP, decode_heads

    if row.op != ATTENTION_OP:
        return f"{row.n} x {row.k}"
    heads, kv_heads, head_dim = decode_heads(int(row.n), int(row.k))
    return f"{heads}/{kv_heads} heads x {head_dim}"


def short_config(cfg: dict | None) -> str:
    """A config for a table cell: 'unfused', or '16x64x256 path=dot SPLIT_K=4 ...'."""
    if not cfg:
        return ""
    if cfg.get("impl") == "unfused":
        return "unfused"
    blocks = ("BLOCK_M", "BLOCK_N", "BLOCK_K")
    parts = ["x".join(str(cfg[b]) for b in blocks)] if all(b in cfg for b in blocks) else []
    parts += [f"{key}={value}" for key, value in cfg.items() if key not in blocks and key != "impl"]
    return " ".join(parts)


def fmt_float(value, digits: int = 2) -> str:
    """A number for a table cell; '-' for missing (None or NaN)."""
    if value is None or value != value:
        return "-"
    return f"{value:.{digits}f}"


def fmt_us(value) -> str:
    """A time in us for a narrow cell: 2 decimals below 100 us, 1 below 10 ms, none above."""
    if value is None or value != value:
        return "-"
    return fmt_float(value, 2 if abs(value) < 100 else 1 if abs(value) < 10_000 else 0)


def model_ops(config, op: list[str] | None, verb: str) -> list[str]:
    """The ops --op names (each once; an unknown one is a ValueError), every op by default; decode_attention
    left out where the model's heads are ones its kernels cannot take (Qwen3Config.attention_unsupported),
    said once on stderr. Nothing left to `verb` is an error."""
    import kernel_space as ks
    from kernel_space.attention_shape import ATTENTION_OP

    ops = list(dict.fromkeys(op)) if op else list(ks.ALL_OPS)  # a repeated --op counts once
    for name in ops:
        ks.get_op(name)
    reason = config.attention_unsupported() if ATTENTION_OP in ops else None
    if not reason:
        return ops
    rest = [name for name in ops if name != ATTENTION_OP]
    if not rest:
        fail(f"nothing to {verb}: {config.name}'s {reason}, so the model runs PyTorch's attention (SDPA) "
             "and decode_attention has no kernel here")
    typer.echo(f"decode_attention left out: {config.name}'s {reason}; the model runs PyTorch's attention "
               "(SDPA) there", err=True)
    return rest


def resolve_model_name(store, spec: str) -> str:
    """The stored name for `spec`: itself if the database knows it, else the name of the preset or
    config.json it designates (as the tuner stores it). StorageError when it is neither."""
    from qwen3.config import resolve_model
    from storage import StorageError
    from storage.export import model_names

    known = model_names(store)
    if spec in known:
        return spec
    try:
        return resolve_model(spec).name
    except ValueError as exc:
        listed = ", ".join(known) or "none yet"
        raise StorageError(f"{exc}; models with winners in the database: {listed}") from None


class _DropInterrupts:
    """A logging filter: a Ctrl-C that lands inside SQLAlchemy's connection pool is logged there with
    its traceback ("Exception during reset or similar"); the command says it was interrupted instead."""

    def filter(self, record) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt))


def quiet_interrupts() -> None:
    import logging

    logging.getLogger("sqlalchemy.pool").addFilter(_DropInterrupts())


def interpreter_needed() -> bool:
    """Without a GPU the kernels run in Triton's interpreter. Call it before anything imports the
    kernels: triton.jit reads TRITON_INTERPRET when a kernel is defined, not when it launches."""
    import torch

    if torch.cuda.is_available():
        return False
    os.environ.setdefault("TRITON_INTERPRET", "1")
    return True
