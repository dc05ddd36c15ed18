"""`kernel-search check`: every op against its reference (and timed, on a GPU) at a model's shapes."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import (
    console,
    fail,
    interpreter_needed,
    model_ops,
    new_table,
    op_label,
    shape_cell,
    user_errors,
)


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
    wide: Annotated[bool, typer.Option("--wide", help="Every config key in full (lines get long).")] = False,
):
    """Check every fused op (decode attention too) against its fp64 reference on fresh random inputs, with
    its outputs poisoned first; on a GPU also time it beside the unfused path, the cuBLAS GEMM alone and
    the HBM floor."""
    cuda = not interpreter_needed()  # first: before the kernels are imported
    from qwen3.config import resolve_model
    from tuner.check import check_ops

    cfg = resolve_model(model or ("qwen3-0.6b" if cuda else "qwen3-tiny"))
    ops = model_ops(cfg, op, "check")
    torch_dtype = _dtype(dtype or ("bfloat16" if cuda else "float16"))
    m_list = _ms(ms)
    status_console = console(stderr=True)
    where = "GPU" if cuda else "CPU through Triton's interpreter"
    with status_console.status(f"checking {cfg.name} on the {where}") as status:
        rows = check_ops(cfg.dims(), m_list, torch_dtype, ops, configs,
                         progress=lambda text: status.update(f"checking {text}"))
    title = f"{cfg.name}, {str(torch_dtype).replace('torch.', '')}, {where}"
    console(wide=wide).print(_table(rows, title, timed=cuda, wide=wide))
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


def _table(rows, title: str, timed: bool, wide: bool = False):
    """One row per (op, M, config), its relative error (or FAILED and why); narrow (no shape column,
    the config brief: brief_config) unless wide, so that the table fits 100 columns on a GPU too."""
    from kernel_space.attention_shape import ATTENTION_OP, decode_m

    timed_cols = ["fused", "unfused", "cuBLAS", "floor"] if timed else []
    columns = ["op", "M", *(["shape"] if wide else []), "rel err", *timed_cols, "config"]
    table = new_table(title + (" (times in us)" if timed else ""), columns,
                      numeric=set(columns) - {"op", "shape", "rel err", "config"})
    for r in rows:
        err = f"{r.rel_error:.1e}" if r.rel_error is not None else "-"
        err = err if r.passed else f"FAILED {err}: {r.reason}"
        times = (_us(r.fused_us), _us(r.unfused_us), _us(r.cublas_us), _us(r.floor_us)) if timed else ()
        m, context = decode_m(r.m) if r.op == ATTENTION_OP else (r.m, None)  # as query names it
        config = r.config if wide or r.settings is None else brief_config(r.settings)
        table.add_row(op_label(r.op, context), str(m), *([shape_cell(r)] if wide else []), err, *times, config)
    return table


def brief_config(cfg: dict) -> str:
    """The keys of a config that tell configs apart at a glance: 'fma 1x8x128 k1 w4 s4' (path, BLOCK_M x
    BLOCK_N x BLOCK_K, SPLIT_K, warps, stages) or, for decode attention, 'group 16sp n64 w4 s2' (pack,
    SPLITS, BLOCK_N, warps, stages; ' +prep' where prep is fused, ' +early' where kv is early). --wide
    prints every key."""
    w, s = cfg.get("num_warps", "?"), cfg.get("num_stages", "?")
    if "SPLITS" in cfg:
        prep = " +prep" if cfg.get("prep") == "fused" else ""
        early = " +early" if cfg.get("kv") == "early" else ""
        return f"{cfg.get('pack', '?')} {cfg['SPLITS']}sp n{cfg.get('BLOCK_N', '?')} w{w} s{s}{prep}{early}"
    blocks = "x".join(str(cfg.get(key, "?")) for key in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
    return f"{cfg.get('path', '?')} {blocks} k{cfg.get('SPLIT_K', 1)} w{w} s{s}"


def register(app: typer.Typer) -> None:
    app.command()(check)
