"""The end-to-end step check in the command line: what `tune` runs after tuning, and the compact table
of step checks that `tune`, `query` and `show` print (storage.steps holds the rule)."""

from __future__ import annotations

import os
import warnings

import typer

from cli.common import console, fail, fmt_float, new_table, one_line


def bench_batches(text: str | None, buckets: list[int]) -> list[int]:
    """The batches to check: --bench-batches (each a tuned bucket up to the largest decode batch), or
    the tuned decode buckets. A one-line error for a batch that is not one of them."""
    from cli.bench import int_list
    from tuner.step_bench import MAX_BATCH, default_batches

    if text is None:
        return default_batches(buckets)
    batches = int_list(text, "--bench-batches")
    wrong = [b for b in batches if b not in buckets or b > MAX_BATCH]
    if wrong:
        fail(f"--bench-batches {wrong[0]} is not a decode bucket this tune covers (up to {MAX_BATCH}: "
             f"{', '.join(str(b) for b in default_batches(buckets)) or 'none'}); the check decides per bucket")
    return batches


def skip_reason(no_bench: bool, on_cpu: bool, batches: list[int]) -> str | None:
    """Why tune will not check the step, or None when it will."""
    if no_bench:
        return "--no-bench"
    if on_cpu:
        return "no CUDA GPU here, and the decode step is timed on a GPU only (CUDA graphs)"
    if not batches:
        return "no decode bucket (M <= 256) was tuned"
    return None


def skipped_line(reason: str) -> str:
    """The one line tune prints instead of the check."""
    return f"end-to-end check skipped: {reason}; export writes the per-op winners as they are"


def run_check(store, config, dtype: str, fp: dict, previous, batches: list[int], device: int | None = None) -> None:
    """Time the decode step in each arm, store it, print the table and what ships. A failed measurement
    (CUDA error, out of memory) is one line on stderr: the tune's winners stand."""
    import torch

    from cli.bench import progress_status
    from cli.generate import warnings_as_lines
    from storage.engine import StorageError
    from storage.queries import steps_frame
    from storage.steps import describe
    from tuner.step_bench import step_check

    if device is not None:
        torch.cuda.set_device(device)
    title = f"end-to-end check of {config.name} on {torch.cuda.get_device_name()}: decode step, batch " + \
        ", ".join(map(str, batches))
    try:
        with warnings_as_lines(), progress_status(title) as progress:
            # Each batch's prefill (batch x CONTEXT tokens) may pass the table's last bucket: true, and
            # not what this check is about (the decode step).
            warnings.filterwarnings("ignore", message=".*past the dispatch table's last tuned bucket",
                                    category=RuntimeWarning)
            check = step_check(store, config, dtype, fp, previous, batches, progress)
    except StorageError as exc:
        typer.echo(skipped_line(str(exc)))
        return
    except RuntimeError as exc:  # CUDA errors and out of memory (torch.cuda.OutOfMemoryError) among them
        if os.environ.get("KERNEL_SEARCH_DEBUG"):
            raise
        typer.echo(f"end-to-end check failed ({one_line(exc)}): export writes the per-op winners as they are",
                   err=True)
        return
    print_steps(console(), steps_frame(store, run_id=check.run_id))
    for line in describe(check.verdicts, check.replaced, check.attention):
        typer.echo(line)
    for line in check.attention_skipped:
        typer.echo(line, err=True)
    if check.no_previous:
        typer.echo(f"no previous arm: {check.no_previous}")


ARMS = ("unfused", "table", "previous")


def print_steps(out, frame) -> None:
    """One compact table per step check (GPU, model, dtype, table): tok/s per batch in each arm (table:
    its stream in the model dtype; fixed: the same table with a fixed-point stream; fold: the faster of
    its two streams with decode attention's combine folded into o_proj, batch 1), the new table's
    speedup (at its fastest variant) over unfused and over the previous table, and the arm that ships
    (the table with the stream, and the fold, it ships with). Fits 100 columns."""
    if frame.empty:
        return
    keys = ["gpu", "fingerprint", "model", "dtype", "run_id"]
    for (gpu, fp, model, dtype, _), group in frame.groupby(keys, sort=False):
        first = group.iloc[0]
        has_previous = group["previous_tok_s"].notna().any()
        has_fixed = group["fixed_stream_tok_s"].notna().any()
        has_fold = group["fold_tok_s"].notna().any() or group["fold_fixed_tok_s"].notna().any()
        columns = ["batch", "unfused", "table", *(["fixed"] if has_fixed else []), *(["fold"] if has_fold else []),
                   *(["previous"] if has_previous else []), "speedup", *(["vs previous"] if has_previous else []),
                   "ships"]
        state = "export applies this check" if first["current"] else "the winners have changed since"
        out.print(f"end to end (decode tok/s, CUDA graph): {model} ({dtype}) on {gpu} [{fp}]")
        out.print(f"table {first['table_hash']} ({state}), context {first['context']}, "
                  f"measured {first['created_at']:%Y-%m-%d %H:%M}")
        table = new_table(None, columns, set(columns) - {"ships"})
        for row in group.itertuples(index=False):
            ships = _ships(row)
            cells = {"batch": str(row.batch), "speedup": _times(row.speedup), "vs previous": _times(row.vs_previous),
                     "ships": ships, "fixed": _tok_s(row.fixed_stream_tok_s),
                     "fold": _tok_s(max((v for v in (row.fold_tok_s, row.fold_fixed_tok_s) if v == v and v is not None),
                                        default=None))}
            for arm in ARMS:
                cells[arm] = _tok_s(getattr(row, f"{arm}_tok_s"))
            table.add_row(*(cells[name] for name in columns))
        out.print(table)


def _ships(row) -> str:
    """The arm that ships, and for the new table the variant it ships with: "table, fixed stream, fold"."""
    if row.ships != "table" or not isinstance(row.stream, str):
        return row.ships
    return f"table, {row.stream} stream" + (", fold" if row.fold is True else "")


def _tok_s(value) -> str:
    return "-" if value is None or value != value else f"{value:,.0f}"


def _times(value) -> str:
    text = fmt_float(value, 2)
    return text if text == "-" else f"{text}x"
