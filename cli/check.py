"""`kernel-search check`: every op against its reference (and timed, on a GPU) at a model's shapes."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.common import fail, interpreter_needed, user_errors


@user_errors
def check(
    model: Annotated[str | None, typer.Option(help="Preset or config.json. Default: qwen3-0.6b on a GPU, "
                                               "qwen3-tiny on the CPU (the interpreter is slow).")] = None,
    ms: Annotated[str, typer.Option("--ms", help="Comma list of M (tokens per batch; decode attention's batch, "
                                    "over 4096 cache slots, 64 without a GPU) to check.")] = "1,3,17",
    dtype: Annotated[str | None, typer.Option(help="bfloat16, float16 or float32. Default: bfloat16 on a GPU, "
                                               "float16 on the CPU (the interpreter's bf16 tl.dot is wrong).")] = None,
    op: Annotated[list[str] | None, typer.Option("--op", help="Only these ops (repeatable).")] = None,
    configs: Annotated[int, typer.Option(min=1, help="Default configs checked per (op, M).")] = 2,
):
    """Check every fused op (decode attention too) against its fp64 reference on fresh random inputs, with
    its outputs poisoned first; on a GPU also time it beside the unfused path, the cuBLAS GEMM alone and
    the HBM floor."""
    cuda = not interpreter_needed()  # first: before the kernels are imported
    from qwen3.config import resolve_model
    from tuner.check import check_ops

    cfg = resolve_model(model or ("qwen3-0.6b" if cuda else "qwen3-tiny"))
    torch_dtype = _dtype(dtype or ("bfloat16" if cuda else "float16"))
    m_list = _ms(ms)
    console = Console(stderr=True)
    where = "GPU" if cuda else "CPU through Triton's interpreter"
    with console.status(f"checking {cfg.name} on the {where}") as status:
        rows = check_ops(cfg.dims(), m_list, torch_dtype, op or None, configs,
                         progress=lambda text: status.update(f"checking {text}"))
    Console().print(_table(rows, f"{cfg.name}, {str(torch_dtype).replace('torch.', '')}, {where}", timed=cuda))
    if not rows:
        fail("no config of the search space fits these shapes: nothing was checked")
    bad = [r for r in rows if not r.passed]
    if bad:
        fail(f"{len(bad)} of {len(rows)} checks failed")
    typer.echo(f"all {len(rows)} checks passed")


def _dtype(name: str):
    import torch

    dtypes = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
    if name not in dtypes:
        fail(f"unknown dtype {name!r}: use bfloat16, float16 or float32")
    return dtypes[name]


def _ms(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        fail(f"--ms must be a comma list of ints, got {text!r}")
    if not values or min(values) < 1:
        fail(f"--ms must list positive ints, got {text!r}")
    return values


def _us(value) -> str:
    return f"{value:.1f}" if value is not None else "-"


def _table(rows, title: str, timed: bool) -> Table:
    from kernel_space.attention_shape import describe

    table = Table(title=title)
    timed_cols = ("fused us", "unfused us", "cuBLAS us", "floor us") if timed else ()
    for col in ("op", "M", "N", "K", "rel err", "ok", *timed_cols):
        table.add_column(col, no_wrap=True)
    table.add_column("config", overflow="fold")
    for r in rows:
        err = f"{r.rel_error:.1e}" if r.rel_error is not None else "-"
        times = (_us(r.fused_us), _us(r.unfused_us), _us(r.cublas_us), _us(r.floor_us)) if timed else ()
        m = describe(r.op, r.m).removeprefix("M=")  # decode attention: "8 ctx=4096"
        table.add_row(r.op, m, str(r.n), str(r.k), err, "yes" if r.passed else f"NO: {r.reason}", *times, r.config)
    return table


def register(app: typer.Typer) -> None:
    app.command()(check)
