"""The `kernel-search` command line: a typer app; each command lives in its own module.

To add a command module: write cli/<name>.py with the command functions and a `register(app)`
that adds them (see cli/export.py), then add the module to COMMANDS below.
"""

from __future__ import annotations

import typer

from cli import bench, check, export, generate, query, report, show, tune, worker
from cli.common import quiet_interrupts

app = typer.Typer(
    name="kernel-search",
    help="Autotune fused Triton kernels of Qwen3 decoder layers per GPU and shape, keep every trial in a "
    "database, and export the winners as a dispatch table.",
    no_args_is_help=True,
    rich_markup_mode="markdown",  # joins the lines of a docstring paragraph, as help text should
    pretty_exceptions_show_locals=False,  # locals can hold a database URL with its password
)

COMMANDS = (check, tune, worker, export, query, show, report, generate, bench)
for module in COMMANDS:
    module.register(app)


def main() -> None:
    """Entry point of the `kernel-search` console script."""
    quiet_interrupts()
    app(prog_name="kernel-search")


if __name__ == "__main__":
    main()
