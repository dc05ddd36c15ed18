"""`show`: the studies in the database, how far each has got, and why trials failed."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import (
    DbOption,
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
    user_errors,
)

NUMERIC = {"M", "trials", "ok", "failed", "incorrect", "best us", "speedup"}
NARROW = ["op", "M", "trials", "ok", "failed", "incorrect", "best us", "winner", "speedup"]
WIDE = ["gpu", "fingerprint", "models", "op", "N x K", "dtype", *NARROW[1:]]


@user_errors
def show(
    gpu: GpuOption = None,
    model: ModelOption = None,
    op: OpOption = None,
    m_min: MMinOption = None,
    m_max: MMaxOption = None,
    reasons: Annotated[int, typer.Option("--reasons", min=0, help="How many failure reasons to list.")] = 15,
    wide: WideOption = False,
    db: DbOption = None,
):
    """The studies (one per GPU, op, shape and M bucket) with their trial counts, best time and
    winner, the end-to-end checks `tune` ran (decode tokens/s per batch with the table, unfused and with
    the previous table), then the failed and incorrect trials grouped by reason (numbers folded to #).
    Fits 100 columns (one table per model, dtype and GPU); --wide shows every column in one table."""
    from cli.step_check import print_steps
    from storage.engine import display_url
    from storage.queries import failures_frame, steps_frame, studies_frame

    store = open_store(db, readonly=True)
    check_filters(store, gpu, model, op, m_min, m_max)
    filters = dict(gpu=gpu, model=model, op=op, m_min=m_min, m_max=m_max)
    studies = studies_frame(store, **filters)
    out = console(wide=wide)
    if studies.empty:
        out.print(f"no studies in {display_url(store.url)}" + (" match" if any(filters.values()) else ""))
        return
    won = int(studies["winner_arm"].notna().sum())
    out.print(f"{display_url(store.url)}: {len(studies)} studies, {int(studies['trials'].sum())} trials, "
              f"{won} winners ({len(studies) - won} without a winner)")
    print_studies(out, studies, wide)
    print_steps(out, steps_frame(store, gpu=gpu, model=model, batch_min=m_min, batch_max=m_max))
    print_failures(out, failures_frame(store, **filters), reasons)


def print_studies(out, studies, wide: bool) -> None:
    groups = [("studies", studies)] if wide else [
        (group_title(*key), group)
        for key, group in studies.groupby(["gpu", "fingerprint", "models", "dtype"], sort=False)]
    for title, group in groups:
        columns = WIDE if wide else NARROW
        table = new_table(title, columns, NUMERIC)
        for row in group.itertuples(index=False):
            cells = {"gpu": row.gpu, "fingerprint": row.fingerprint, "models": row.models, "op": op_cell(row),
                     "N x K": shape_cell(row), "dtype": row.dtype, "M": str(row.m), "trials": str(row.trials),
                     "ok": str(row.ok), "failed": str(row.failed), "incorrect": str(row.incorrect),
                     "best us": fmt_us(row.best_us),
                     "winner": row.winner_arm if isinstance(row.winner_arm, str) else "-",
                     "speedup": fmt_float(row.speedup, 3)}
            table.add_row(*(cells[name] for name in columns))
        out.print(table)


def print_failures(out, failures, reasons: int) -> None:
    if failures.empty:
        out.print("no failed or incorrect trials")
        return
    table = new_table(f"failures by reason ({int(failures['count'].sum())} trials, "
                      f"{len(failures)} reasons{'' if len(failures) <= reasons else f', top {reasons}'})",
                      ["count", "status", "reason", "studies", "ops"], {"count", "studies"})
    for row in failures.head(reasons).to_dict("records"):
        ops = row["ops"].replace(",", ", ")  # a space to wrap at
        table.add_row(str(row["count"]), row["status"], row["reason"], str(row["studies"]), ops)
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("show")(show)
