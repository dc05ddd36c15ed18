"""`kernel-search bench`: end-to-end decode tokens/s with a dispatch table and without it, side by side."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from cli.common import console, fail, user_errors
from cli.generate import DTYPES, TableOption, torch_dtype, warnings_as_lines

# Batches beyond this are no decode batch (the CUDA-graph buckets end at 256); 10**8 only ran out
# of memory after minutes of setup.
MAX_BATCH = 4096


@user_errors
def bench(
    model: Annotated[str, typer.Option("--model", help="Preset (e.g. qwen3-0.6b) or config.json; weights are "
                                                      "random.")] = "qwen3-0.6b",
    batch: Annotated[str, typer.Option("--batch", help="Comma list of batch sizes.")] = "1,8,32",
    context: Annotated[str, typer.Option("--context", "--prompt-len", help="Comma list of prompt lengths: the "
                                         "tokens in the cache before decoding starts.")] = "128",
    output_len: Annotated[int, typer.Option("--output-len", min=2, help="Generated tokens per sequence.")] = 128,
    table: TableOption = None,
    breakdown: Annotated[bool, typer.Option("--breakdown", help="Also the GPU time of a decode step per part "
                                                               "(profiled kernels) and the gaps between.")] = False,
    dtype: Annotated[str, typer.Option(help="bfloat16, float16 or float32.")] = "bfloat16",
    repeats: Annotated[int, typer.Option(min=1, help="Timed runs per cell (the median is shown).")] = 3,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the rows to this JSON file.")] = None,
):
    """Decode throughput and prefill time of a Qwen3 preset with random weights: per batch size and
    context, a prefill of --context tokens a sequence then --output-len greedy steps replayed from a CUDA
    graph, once with every op unfused and once through --table. Needs a CUDA GPU."""
    config, batches, contexts = _checked(model, batch, context, output_len)
    import torch

    if dtype not in DTYPES:
        fail(f"unknown dtype {dtype!r}: use {', '.join(DTYPES)}")
    if not torch.cuda.is_available():
        fail("bench needs a CUDA GPU and none is visible here")
    from qwen3.bench import PARTS, run_bench
    from qwen3.dispatch import Dispatcher

    with warnings_as_lines():
        ops = Dispatcher(table) if table is not None else None
        with progress_status(f"benchmarking {config.name} on {torch.cuda.get_device_name()}") as progress:
            rows = run_bench(config, batches, contexts, output_len, ops, breakdown, torch_dtype(dtype, True),
                             repeats, progress=progress)
    out = console()
    sdpa_only = config.attention_unsupported() is not None  # no attention column, no fold: SDPA leaves no combine
    out.print(_throughput_table(rows, config.name, torch.cuda.get_device_name(), output_len, sdpa_only))
    streams = None
    if ops is not None:
        from qwen3.model import describe_streams

        streams = describe_streams(batches, ops.table, torch_dtype(dtype, True))
        typer.echo(f"residual stream of the table arm in decode: {streams}")
        folded = [] if sdpa_only else [b for b in batches if ops.folds(b)]
        if folded:
            typer.echo(f"decode attention's combine folded into o_proj at batch {', '.join(map(str, folded))}")
    if breakdown:
        out.print(_breakdown_table(rows, PARTS))
    if json_out is not None:
        json_out.write_text(json.dumps({"model": config.name, "device": torch.cuda.get_device_name(), "dtype": dtype,
                                        "contexts": contexts, "output_len": output_len,
                                        "table": str(table) if table else None, "stream": streams,
                                        "rows": [asdict(r) for r in rows]}, indent=2) + "\n")


@contextlib.contextmanager
def progress_status(title: str):
    """A progress(text) callback: a spinner on a terminal, one line per stage in a log."""
    err = console(stderr=True)
    with err.status(title) as status:
        def progress(text):
            status.update(text)
            if not err.is_terminal:
                typer.echo(text, err=True)

        yield progress


def _checked(model: str, batch: str, context: str, output_len: int):
    """(config, batches, contexts) from the options, or a one-line error naming the bad one."""
    from qwen3.config import resolve_model

    batches, contexts = int_list(batch, "--batch"), int_list(context, "--context")
    config = resolve_model(model)
    if batches[-1] > MAX_BATCH:
        fail(f"--batch must list ints from 1 to {MAX_BATCH}, got {batch!r}")
    if contexts[-1] + output_len > config.max_position_embeddings:
        fail(f"--context {contexts[-1]} + --output-len {output_len} exceeds {config.name}'s "
             f"max_position_embeddings {config.max_position_embeddings}")
    return config, batches, contexts


def int_list(text: str, option: str) -> list[int]:
    """A comma list of positive ints, sorted and without repeats; one-line error naming the option."""
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        fail(f"{option} must be a comma list of ints, got {text!r}")
    if not values or values[0] < 1:
        fail(f"{option} must list positive ints, got {text!r}")
    return values


def _throughput_table(rows, name, device, output_len, sdpa_only=False):
    """One line per (batch, context): each arm's tok/s, ms a step and prefill ms, and table / unfused."""
    from rich.table import Table

    by = {(r.arm, r.batch, r.context): r for r in rows}
    arms = [arm for arm in ("unfused", "table") if any(r.arm == arm for r in rows)]
    t = Table(title=f"{name} on {device}: output {output_len} tokens, CUDA-graph decode")
    t.add_column("batch", justify="right")
    t.add_column("context", justify="right")
    for arm in arms:
        for what in ("tok/s", "ms/step", "prefill ms"):
            t.add_column(f"{arm} {what}", justify="right")
    if len(arms) == 2:
        t.add_column("speedup", justify="right")
        t.add_column("ops fused", justify="right")
    # Decode attention from the table: shown where the table has decode_attention buckets (not where the
    # model's heads run SDPA whatever the table says, sdpa_only: the model's warning says why, once).
    attention = not sdpa_only and any(r.arm == "table" and r.attention and not r.attention.startswith("plan")
                                      for r in rows)
    if attention:
        t.add_column("table attention", overflow="fold")
    for b, c in sorted({(r.batch, r.context) for r in rows}):
        cells = [str(b), str(c)]
        for arm in arms:
            r = by[(arm, b, c)]
            cells += [f"{r.tokens_per_s:,.0f}", f"{r.decode_ms:.3f}", f"{r.prefill_ms:,.1f}"]
        if len(arms) == 2:
            base, tab = by[("unfused", b, c)], by[("table", b, c)]
            fused = sum(arm == "fused" for arm in tab.plan.values())
            cells += [f"{tab.tokens_per_s / base.tokens_per_s:.2f}x", f"{fused}/{len(tab.plan)}"]
        if attention:
            cells.append(by[("table", b, c)].attention)
        t.add_row(*cells)
    return t


def _breakdown_table(rows, parts):
    """Per part: GPU kernel us of one step (profiled eagerly) and its share of the CUDA-graph step;
    the graph step minus all kernels is the time between kernels (launch gaps)."""
    from rich.table import Table

    t = Table(title="one decode step: GPU kernel time per part (us, share of the CUDA-graph step)")
    t.add_column("part")
    for r in rows:
        t.add_column(f"{r.arm} b={r.batch} c={r.context}", justify="right")
    lines = [(part, lambda r, p=part: r.breakdown_us.get(p, 0.0)) for part in parts]
    lines += [("kernels (sum)", lambda r: r.breakdown_us.get("kernels", 0.0)),
              ("gaps between kernels", lambda r: r.decode_ms * 1000 - r.breakdown_us.get("kernels", 0.0)),
              ("CUDA-graph step", lambda r: r.decode_ms * 1000)]
    for name, value in lines:
        cells = []
        for r in rows:
            us, step = value(r), r.decode_ms * 1000 or 1.0
            cells.append(f"{us:,.0f}" if name == "CUDA-graph step" else f"{us:,.0f} ({100 * us / step:.0f}%)")
        t.add_row(name, *cells)
    return t


def register(app: typer.Typer) -> None:
    app.command()(bench)
