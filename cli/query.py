"""`query`: the winners, filtered, as a table, CSV or JSON."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.common import (
    DbOption,
    Format,
    GpuOption,
    MMaxOption,
    MMinOption,
    ModelOption,
    OpOption,
    console,
    fmt_float,
    open_store,
    short_config,
    user_errors,
)


@user_errors
def query(
    beats_cublas: Annotated[bool, typer.Option("--beats-cublas", help="Only fused winners faster than the cuBLAS "
                                                                      "GEMM alone.")] = False,
    gpu: GpuOption = None,
    model: ModelOption = None,
    op: OpOption = None,
    m_min: MMinOption = None,
    m_max: MMaxOption = None,
    min_speedup: Annotated[float | None, typer.Option("--min-speedup", help="Only winners with speedup (vs the "
                                                                             "unfused arm) >= this.")] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table (for reading), csv or json (for tools).")]
    = Format.table,
    db: DbOption = None,
):
    """Which fusions win, where, and by how much: one row per tuned (GPU, op, shape, M bucket).

    speedup is the winner vs the unfused arm (median of paired ratios); vs_cublas compares it with
    the cuBLAS GEMM alone; floor is the time the bytes and flops need at the measured peak.
    """
    from storage.queries import winners_frame

    store = open_store(db, readonly=True)
    check_model(store, model)
    frame = winners_frame(store, gpu=gpu, model=model, op=op, m_min=m_min, m_max=m_max,
                          min_speedup=min_speedup, beats_cublas=beats_cublas)
    if fmt is Format.csv:
        out = frame.copy()
        out["config"] = out["config"].map(lambda cfg: json.dumps(cfg, separators=(",", ":")))
        typer.echo(out.to_csv(index=False), nl=False)
    elif fmt is Format.json:
        typer.echo(frame.to_json(orient="records", date_format="iso", indent=2))
    elif frame.empty:
        typer.echo("no winners match", err=True)
    else:
        print_winners(frame)


def check_model(store, model: str | None) -> None:
    """A --model the database has never seen is a mistake, not an empty answer."""
    from storage import StorageError
    from storage.queries import known_models

    if model is None:
        return
    known = known_models(store)
    if model not in known:
        raise StorageError(f"unknown model {model!r}; models in the database: {', '.join(known) or 'none yet'}")


def print_winners(frame) -> None:
    from rich.table import Table

    table = Table(title=f"{len(frame)} winners")
    for name in ("gpu", "models", "op", "N x K", "dtype", "M", "arm", "us", "unfused", "cublas", "floor",
                 "speedup", "vs cublas", "config"):
        numeric = name in ("M", "us", "unfused", "cublas", "floor", "speedup", "vs cublas")
        table.add_column(name, justify="right" if numeric else "left")
    for row in frame.itertuples(index=False):
        table.add_row(
            row.gpu, row.models, row.op, f"{row.n} x {row.k}", row.dtype, str(row.m), row.arm,
            fmt_float(row.median_us), fmt_float(row.unfused_us), fmt_float(row.cublas_us), fmt_float(row.floor_us),
            fmt_float(row.speedup, 3), fmt_float(row.speedup_vs_cublas, 3), short_config(row.config),
        )
    console().print(table)


def register(app: typer.Typer) -> None:
    app.command("query")(query)
