"""`export` and `import`: dispatch tables out of and into the database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import DbOption, GpuOption, fail, open_store, resolve_model_name, user_errors, write_file


@user_errors
def export(
    model: Annotated[str, typer.Option("--model", help="Model name as tuned (a preset like qwen3-0.6b, or a "
                                                        "config.json path).")],
    gpu: GpuOption = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="bfloat16, float16 or float32 (default: the one dtype "
                                                               "the model has winners in, else bfloat16).")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="File to write; '-' for stdout.")] = "-",
    per_op: Annotated[bool, typer.Option("--per-op", help="The per-op winners as they are, without the end-to-end "
                                                          "check's fallbacks.")] = False,
    db: DbOption = None,
):
    """Write the dispatch table of a model on one GPU: per op and M bucket, the winning arm and config.

    --gpu picks the fingerprint when the database holds results of several GPUs. When `tune` checked this
    very table end to end and its decode step was slower than the unfused path (or the table exported
    before) at some batch, the faster arm's choices are written at that M instead; the file's
    "step_check" entry records the check, and stderr says what changed.
    """
    from storage.steps import describe, shipped_table
    from storage.table import dump_table

    store = open_store(db, readonly=True)
    name = resolve_model_name(store, model)
    shipped = shipped_table(store, name, fingerprint=gpu, dtype=dtype or default_dtype(store, name))
    table = shipped.raw if per_op else shipped.table
    text = dump_table(table if per_op else shipped.to_dict())
    buckets = [b for entry in table.ops.values() for b in entry.buckets]
    fused = sum(b.arm == "fused" for b in buckets)
    if output == "-":
        typer.echo(text, nl=False)
        where = "stdout"
    else:
        write_file(Path(output), text)
        where = output
    typer.echo(f"wrote {where}: {table.model} ({table.dtype}) on {table.fingerprint['device_name']}, "
               f"{len(table.ops)} ops, {len(buckets)} buckets, {fused} fused", err=True)
    if per_op:
        typer.echo("end-to-end check not applied (--per-op): the per-op winners as they are", err=True)
    elif shipped.run is None:
        typer.echo("no end-to-end check of this table (tune on a GPU runs one): the per-op winners as they are",
                   err=True)
    else:
        for line in describe(shipped.run.verdicts, shipped.replaced, shipped.run.attention):
            typer.echo(f"end-to-end check ({shipped.run.created_at:%Y-%m-%d %H:%M}): {line}", err=True)


def default_dtype(store, model: str) -> str:
    """--dtype left out: the one dtype `model` has winners in; bfloat16 where it has none (export then
    says so) or has it among several; else a user error naming them (a CPU tune writes float16)."""
    from storage.export import model_names

    dtypes = model_names(store).get(model, [])
    if len(dtypes) == 1:
        return dtypes[0]
    if len(dtypes) > 1 and "bfloat16" not in dtypes:
        fail(f"model {model!r} has winners in {' and '.join(dtypes)}: choose one with --dtype")
    return "bfloat16"


@user_errors
def import_(
    file: Annotated[Path, typer.Argument(help="A dispatch table JSON file (kernel-search export).",
                                         show_default=False)],
    db: DbOption = None,
):
    """Check a dispatch table and record its rows as winners, so that it shows up in `query`.

    A table from another GPU is stored under its own fingerprint; nothing in it is executed.
    """
    from storage.export import check_runnable, import_table
    from storage.table import load_table

    table = load_table(file)
    check_runnable(table)  # a refused table creates no database
    typer.echo(str(import_table(open_store(db, create=True), table)))


@user_errors
def merge(
    files: Annotated[list[Path], typer.Argument(help="Dispatch tables of one model, dtype and GPU, in order.",
                                                show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", help="File to write; '-' for stdout.")] = "-",
):
    """Merge dispatch tables into one: each op from the last file that has it. For a table tuned in parts,
    e.g. decode attention tuned on its own (`tune --op decode_attention`) added to a table of the GEMM ops.
    Tables of another model, dtype or GPU are refused; each op keeps its own kernel hash, so an op whose
    code changed since still runs its fallback, with a warning, when the model loads the table."""
    from storage.models import utcnow
    from storage.table import dump_table, load_table, merge_tables

    if len(files) < 2:
        fail("merge needs two tables or more")
    tables = [load_table(f) for f in files]
    table = merge_tables(tables, utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"))
    source = {op: f.name for f, t in zip(files, tables, strict=True) for op in t.ops}  # the last file wins
    text = dump_table(table)
    if output == "-":
        typer.echo(text, nl=False)
    else:
        write_file(Path(output), text)
    sources = ", ".join(f"{op} from {source[op]}" for op in table.ops)
    typer.echo(f"wrote {output if output != '-' else 'stdout'}: {table.model} ({table.dtype}), {len(table.ops)} ops: "
               f"{sources}", err=True)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("import")(import_)
    app.command("merge")(merge)
