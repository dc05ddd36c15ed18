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
    WideOption,
    check_filters,
    console,
    fmt_float,
    fmt_us,
    group_title,
    new_table,
    op_cell,
    open_store,
    shape_cell,
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
    wide: WideOption = False,
    db: DbOption = None,
):
    """Which fusions win, where, and by how much: one row per tuned (GPU, op, shape, M bucket).

    speedup is the winner vs the unfused arm (median of paired ratios); vs_cublas compares it with
    the cuBLAS GEMM alone (above 1: the fusion beats it); floor is the time the bytes and flops need
    at the measured peak. Times in us. Decode attention's rows name their context (cache slots, 4k =
    4,096; M is the batch) and have no cuBLAS time (its unfused arm is PyTorch's SDPA). The table fits
    100 columns, one table per model, dtype and GPU; --wide shows every column, configs included. Below
    them (table format), the end-to-end checks `tune` ran: decode tokens/s per batch with the table,
    unfused and with the previous table.
    """
    from cli.step_check import print_steps
    from storage.queries import steps_frame, winners_frame

    if min_speedup is not None and not 0 <= min_speedup < float("inf"):
        raise ValueError(f"--min-speedup must be a finite number >= 0, got {min_speedup}")
    store = open_store(db, readonly=True)
    check_filters(store, gpu, model, op, m_min, m_max)
    frame = winners_frame(store, gpu=gpu, model=model, op=op, m_min=m_min, m_max=m_max,
                          min_speedup=min_speedup, beats_cublas=beats_cublas)
    if fmt is Format.csv:
        out = frame.copy()
        out["config"] = out["config"].map(lambda cfg: json.dumps(cfg, separators=(",", ":")))
        typer.echo(out.to_csv(index=False), nl=False)
    elif fmt is Format.json:
        typer.echo(frame.to_json(orient="records", date_format="iso", indent=2))
    else:
        if frame.empty:
            typer.echo(no_match(store, gpu, model, op, m_min, m_max, min_speedup, beats_cublas), err=True)
        else:
            print_winners(frame, wide)
        print_steps(console(wide=wide), steps_frame(store, gpu=gpu, model=model, batch_min=m_min, batch_max=m_max))
    if beats_cublas:  # rows it cannot judge are left out: say so, empty answer or not
        why = no_cublas_times(store, gpu, model, op, m_min, m_max)
        if why:
            typer.echo(why, err=True)


def no_match(store, gpu, model, op, m_min, m_max, min_speedup, beats_cublas) -> str:
    """Why no winner matched: where the other filters match some, the speedup filters left them out."""
    from storage.queries import winners_frame

    if min_speedup is None and not beats_cublas:
        return "no winners match"
    rest = winners_frame(store, gpu=gpu, model=model, op=op, m_min=m_min, m_max=m_max)
    if rest.empty:
        return "no winners match"
    asked = [f"a speedup >= {min_speedup:g} over the unfused arm"] if min_speedup is not None else []
    asked += ["a fused config faster than the cuBLAS GEMM alone"] if beats_cublas else []
    fused = int((rest["arm"] == "fused").sum())
    return (f"no winners match: of the {len(rest)} that match the other filters ({fused} fused), none has "
            f"{' and '.join(asked)}")


def no_cublas_times(store, gpu, model, op, m_min, m_max) -> str | None:
    """What --beats-cublas could not judge: fused winners without a cuBLAS time (imported from a
    table written before tables carried them). None when every fused winner has one. Decode attention
    is no GEMM: it has no cuBLAS time to miss, and never beats cuBLAS."""
    from kernel_space.attention_shape import ATTENTION_OP
    from storage.queries import winners_frame

    frame = winners_frame(store, gpu=gpu, model=model, op=op, m_min=m_min, m_max=m_max)
    fused = frame[(frame["arm"] == "fused") & (frame["op"] != ATTENTION_OP)]
    missing = int(fused["cublas_us"].isna().sum())
    if not missing:
        return None
    return (f"{missing} of {len(fused)} fused winners have no cuBLAS time (imported from a table without one: "
            "re-export it from the tuning database, or tune on the GPU), so they are not in this answer")


def check_model(store, model: str | None) -> None:
    """A --model the database has never seen is a mistake, not an empty answer."""
    check_filters(store, model=model)


NUMERIC = {"M", "us", "unfused", "cublas", "floor", "speedup", "vs cublas"}
NARROW = ["op", "M", "arm", "us", "unfused", "cublas", "floor", "speedup", "vs cublas"]
WIDE = ["gpu", "fingerprint", "models", "op", "N x K", "dtype", "M", "arm", "us", "unfused", "cublas", "floor",
        "speedup", "vs cublas", "config"]


def print_winners(frame, wide: bool = False) -> None:
    """One table of every column (wide), or one narrow table per (GPU, models, dtype)."""
    out = console(wide=wide)
    if wide:
        table = new_table(f"{len(frame)} winners", WIDE, NUMERIC)
        for row in frame.itertuples(index=False):
            table.add_row(*(_cells(row)[name] for name in WIDE))
        out.print(table)
        return
    out.print(f"{len(frame)} winners (times in us; --wide for shapes and configs)")
    for (gpu, key, models, dtype), group in frame.groupby(["gpu", "fingerprint", "models", "dtype"], sort=False):
        table = new_table(group_title(gpu, key, models, dtype), NARROW, NUMERIC)
        for row in group.itertuples(index=False):
            table.add_row(*(_cells(row)[name] for name in NARROW))
        out.print(table)


def _cells(row) -> dict[str, str]:
    return {
        "gpu": row.gpu, "fingerprint": row.fingerprint, "models": row.models, "op": op_cell(row),
        "N x K": shape_cell(row), "dtype": row.dtype, "M": str(row.m), "arm": row.arm,
        "us": fmt_us(row.median_us), "unfused": fmt_us(row.unfused_us), "cublas": fmt_us(row.cublas_us),
        "floor": fmt_us(row.floor_us), "speedup": fmt_float(row.speedup, 3),
        "vs cublas": fmt_float(row.speedup_vs_cublas, 3), "config": short_config(row.config),
    }


def register(app: typer.Typer) -> None:
    app.command("query")(query)
