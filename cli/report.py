"""`report` and `dashboard`: the database at a glance, as one HTML page (plotly, works offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import DbOption, open_store, user_errors, write_file


@user_errors
def report(
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")] = Path("report.html"),
    db: DbOption = None,
):
    """Write one self-contained HTML page about the tuning database (plotly.js inline: it opens
    offline, about 5 MB).

    Per GPU fingerprint and model: the winners' speedup over the unfused path (ops x M buckets),
    latency against M beside the unfused path, the cuBLAS GEMM alone and the HBM floor, each
    study's best-so-far curve and failures by reason, and the parameters that mattered (Optuna
    importances). Several GPUs in one database are also compared side by side.
    """
    from dashboards import build_report

    store = open_store(db, readonly=True)
    html = build_report(store)
    write_file(output, html)
    typer.echo(f"wrote {output} ({len(html) / 1e6:.1f} MB)", err=True)


@user_errors
def dashboard(
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free one).")] = 8765,
    db: DbOption = None,
):
    """Serve the `report` page on http://127.0.0.1:PORT/, rebuilt from the database on every
    request (reload while a tune runs). Bound to localhost only; Ctrl-C stops it.

    For trial-level browsing, optuna-dashboard (a separate package) reads the same database:
    `optuna-dashboard sqlite:///kernel_search.db`.
    """
    from dashboards import build_report, make_server

    store = open_store(db, readonly=True)
    try:
        server = make_server(lambda: build_report(store), port)
    except OSError as exc:  # the port is taken, or below 1024 for a user
        raise OSError(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc} (pick another --port, or 0 for "
                      "any free one)") from None
    typer.echo(f"serving http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def register(app: typer.Typer) -> None:
    app.command("report")(report)
    app.command("dashboard")(dashboard)
