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
    console,
    fmt_float,
    open_store,
    user_errors,
)
from cli.query import check_model


@user_errors
def show(
    gpu: GpuOption = None,
    model: ModelOption = None,
    op: OpOption = None,
    m_min: MMinOption = None,
    m_max: MMaxOption = None,
    reasons: Annotated[int, typer.Option("--reasons", min=0, help="How many failure reasons to list.")] = 15,
    db: DbOption = None,
):
    """The studies (one per GPU, op, shape and M bucket) with their trial counts, best time and
    winner, then the failed and incorrect trials grouped by reason (numbers folded to #)."""
    from rich.table import Table

    from storage.engine import display_url
    from storage.queries import failures_frame, studies_frame

    store = open_store(db, readonly=True)
    check_model(store, model)
    filters = dict(gpu=gpu, model=model, op=op, m_min=m_min, m_max=m_max)
    studies = studies_frame(store, **filters)
    out = console()
    if studies.empty:
        out.print(f"no studies in {display_url(store.url)}" + (" match" if any(filters.values()) else ""))
        return
    won = int(studies["winner_arm"].notna().sum())
    out.print(f"{display_url(store.url)}: {len(studies)} studies, {int(studies['trials'].sum())} trials, "
              f"{won} winners ({len(studies) - won} without a winner)")

    table = Table(title="studies")
    for name in ("gpu", "fingerprint", "models", "op", "N x K", "dtype", "M", "trials", "ok", "failed",
                 "incorrect", "best us", "winner", "speedup"):
        table.add_column(name, justify="right" if name in ("M", "trials", "ok", "failed", "incorrect", "best us",
                                                           "speedup") else "left")
    for row in studies.itertuples(index=False):
        table.add_row(row.gpu, row.fingerprint, row.models, row.op, f"{row.n} x {row.k}", row.dtype, str(row.m),
                      str(row.trials), str(row.ok), str(row.failed), str(row.incorrect), fmt_float(row.best_us),
                      row.winner_arm if isinstance(row.winner_arm, str) else "-", fmt_float(row.speedup, 3))
    out.print(table)

    failures = failures_frame(store, **filters)
    if failures.empty:
        out.print("no failed or incorrect trials")
        return
    table = Table(title=f"failures by reason ({int(failures['count'].sum())} trials, "
                        f"{len(failures)} reasons{'' if len(failures) <= reasons else f', top {reasons}'})")
    for name in ("count", "status", "reason", "studies", "ops"):
        table.add_column(name, justify="right" if name in ("count", "studies") else "left")
    for row in failures.head(reasons).to_dict("records"):
        table.add_row(str(row["count"]), row["status"], row["reason"], str(row["studies"]), row["ops"])
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("show")(show)
