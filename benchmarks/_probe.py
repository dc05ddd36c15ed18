"""What the session probes share: a decode attention cell over caches cold in L2, a model on random
weights serving a table, A/B rounds of decode steps, and the result file."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import statistics
from pathlib import Path

import torch

from benchmarks.attn_bench import COLD_L2_FACTOR
from kernel_space.decode_attention import AttentionProblem, make_inputs
from qwen3.config import PRESETS


def attention_cell(model: str, batch: int, context: int, dtype: str = "bfloat16") -> AttentionProblem:
    """Decode attention of a preset's head shapes at batch x context."""
    c = PRESETS[model]
    return AttentionProblem(batch, c.num_attention_heads, c.num_key_value_heads, c.head_dim, context, dtype)


def parse_cell(cell: str) -> AttentionProblem:
    """'qwen3-8b:1:8192' -> attention_cell('qwen3-8b', 1, 8192)."""
    model, batch, context = cell.split(":")
    return attention_cell(model, int(batch), int(context))


def cold_inputs(problem: AttentionProblem, seed: int = 0) -> list[dict]:
    """Copies of the cell's inputs (q, caches filled to the context, positions, scale) totalling at
    least COLD_L2_FACTOR x L2, two at least: launches rotating over them find their K/V cold in L2."""
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    copies = max(2, math.ceil(COLD_L2_FACTOR * l2 / problem.kv_bytes()))
    gen = torch.Generator(device="cuda").manual_seed(seed)
    return [make_inputs(problem, "cuda", gen) for _ in range(copies)]


def table_args(parser, model: str, cells: str) -> None:
    """The arguments of a probe that runs a preset's decode step with a table: OUT.json, --model,
    --table, --cells (defaults `model` and `cells`)."""
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", default=model, choices=sorted(PRESETS))
    parser.add_argument("--table", type=Path, required=True)
    parser.add_argument("--cells", default=cells, help="BATCHxCONTEXT, comma separated")


def ab_parser(doc: str, rounds: int, model: str = "qwen3-0.6b", cells: str = "1x256") -> argparse.ArgumentParser:
    """The parser of a probe that runs ab_rounds over a table: table_args, then --rounds (default
    `rounds`) and --output-len (decode steps a cell, default 64)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    table_args(parser, model, cells)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--output-len", type=int, default=64)
    return parser


def table_model(model: str, table: Path):
    """A preset on random bf16 weights, serving `table`, after qwen3.bench.first_cell's throwaway cell."""
    from qwen3.bench import first_cell
    from qwen3.dispatch import Dispatcher
    from qwen3.loader import random_weights

    m = random_weights(PRESETS[model], torch.bfloat16, "cuda", 0)
    first_cell(m)
    m.set_dispatcher(Dispatcher(table))
    return m


def cells(spec: str) -> list[tuple[int, int]]:
    """'32x256,1x2048' -> [(32, 256), (1, 2048)] (batch, context)."""
    return [tuple(int(x) for x in cell.lower().split("x")) for cell in spec.split(",")]


def ab_rounds(model, name: str, spec: str, rounds: int, arms: list[tuple[str, object]], key: str,
              output_len: int = 64) -> list[dict]:
    """Decode tok/s of the table arm (qwen3.bench.bench_cell: CUDA graph, median of 3) per round, cell
    and arm, arms alternating inside each cell (AB AB). An arm is (label, setup): setup() runs before
    its cell is captured and may return the model to run (else `model`); rows keep the label under `key`."""
    from qwen3.bench import bench_cell

    rows = []
    for rnd in range(rounds):
        for batch, context in cells(spec):
            for label, setup in arms:
                row = bench_cell(setup() or model, "table", batch, context, output_len, 3)
                rows.append({"round": rnd, "batch": batch, "context": context, key: label,
                             "decode_ms": row.decode_ms, "tok_s": row.tokens_per_s})
                print(f"{name} round {rnd} batch {batch} x {context} {key}={label}: "
                      f"{row.tokens_per_s:9,.0f} tok/s ({row.decode_ms * 1000:.0f} us a step)", flush=True)
    return rows


def ab_summary(name: str, rows: list[dict], spec: str, key: str, base: str, new: str) -> list[dict]:
    """Per cell of `spec`, the median tok/s of arms `base` and `new` over ab_rounds' rows and their
    ratio, printed a line a cell."""
    summary = []
    for batch, context in cells(spec):
        med = {arm: statistics.median(r["tok_s"] for r in rows
                                      if (r["batch"], r["context"], r[key]) == (batch, context, arm))
               for arm in (base, new)}
        summary.append({"batch": batch, "context": context, f"{base}_tok_s": med[base], f"{new}_tok_s": med[new],
                        f"{new}_vs_{base}": med[new] / med[base]})
        print(f"{name} batch {batch} x {context}: {base} {med[base]:,.0f}, {new} {med[new]:,.0f} tok/s "
              f"({med[new] / med[base]:.3f}x)", flush=True)
    return summary


def write_result(out: Path, **fields) -> None:
    """The probe's JSON: the GPU's name and the date, then `fields`."""
    out.write_text(json.dumps({"gpu": torch.cuda.get_device_name(0), "date": dt.date.today().isoformat(), **fields},
                              indent=1))
