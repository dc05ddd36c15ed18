"""The end-to-end matrix: models x batch x context, arms unfused, table and torch_compile (the peer of
benchmarks/gptfast_qwen3.py), decode tok/s (CUDA graph, median of --repeats runs) and prefill ms.

Every (model, batch, context) cell whose weights + KV cache + prefill activations fit the GPU runs all
its arms on the same weights and prompts, one arm after the other, each freeing its memory before the
next, all after one short cell that is thrown away (see load); a cell that does not fit is skipped
with its byte count. A row also says what decode attention ran (fused, plan or unfused, and why).
The result file is rewritten after every arm, so a run cut off by a time limit keeps what finished,
and running the same command again continues where it stopped (--fresh starts over). Filters pick a
subset for one 10-minute command:

    python3 benchmarks/e2e_matrix.py --models qwen3-0.6b --contexts 256,2048 \\
        --table qwen3-0.6b=benchmarks/results/dispatch_qwen3-0.6b_H100.json
    python3 benchmarks/e2e_matrix.py --render benchmarks/results/e2e_matrix_H100_*.json   # markdown
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks.gptfast_qwen3 import add_settings_arguments, settings_from

ARMS = ("unfused", "table", "torch_compile")
RESERVE_BYTES = 3 << 30  # CUDA context, cuBLAS workspaces, graph pools, allocator slack
MEMORY_FRACTION = 0.92  # of the GPU's memory, at most, for what a cell holds at its peak


def int_list(text: str) -> list[int]:
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of ints: {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"not a list of positive ints: {text!r}")
    return values


def name_list(choices):
    def parse(text: str) -> list[str]:
        names = [part.strip() for part in text.split(",") if part.strip()]
        bad = [n for n in names if choices and n not in choices]
        if not names:
            raise argparse.ArgumentTypeError(f"an empty list: {text!r}")
        if bad:
            raise argparse.ArgumentTypeError(f"{', '.join(bad)} in {text!r}: choose from {', '.join(choices)}")
        return names
    return parse


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", type=name_list(()), default=["qwen3-0.6b", "qwen3-8b"], help="presets or config.json")
    p.add_argument("--batches", type=int_list, default=[1, 8, 32])
    p.add_argument("--contexts", type=int_list, default=[256, 2048, 8192, 32768])
    p.add_argument("--arms", type=name_list(ARMS), default=list(ARMS))
    p.add_argument("--table", action="append", default=[], metavar="MODEL=FILE", help="dispatch table of a model")
    p.add_argument("--out", type=Path, help="result JSON (default benchmarks/results/e2e_matrix_<GPU>_<date>.json)")
    p.add_argument("--fresh", action="store_true", help="overwrite --out instead of continuing it")
    p.add_argument("--output-len", type=int, default=64, help="tokens decoded after each prompt")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per arm and cell (the median counts)")
    p.add_argument("--seed", type=int, default=0)
    add_settings_arguments(p, prefix="peer-")
    p.add_argument("--render", nargs="+", type=Path, metavar="JSON", help="print result files as markdown, exit")
    args = p.parse_args(argv)
    if args.output_len < 2 or args.repeats < 1:
        p.error(f"--output-len must be >= 2 and --repeats >= 1, got {args.output_len}, {args.repeats}")
    return args


def parse_tables(specs: list[str], models: list[str], arms: list[str]) -> dict[str, Path]:
    """{model: table file} from MODEL=FILE; ValueError naming what is malformed, missing or absent."""
    tables = {}
    for spec in specs:
        model, sep, path = spec.partition("=")
        if not sep or not model or not path:
            raise ValueError(f"--table takes MODEL=FILE, got {spec!r}")
        if not Path(path).is_file():
            raise ValueError(f"--table {spec!r}: no such file {path}")
        tables[model] = Path(path)
    missing = [m for m in models if m not in tables]
    if "table" in arms and missing:
        raise ValueError(f"arm table needs --table MODEL=FILE for {', '.join(missing)} (or leave it out of --arms)")
    return tables


# --- memory -----------------------------------------------------------------------------------------

def weight_bytes(c, elem: int = 2) -> int:
    """Bytes of the model's weights (bf16 by default)."""
    qkv = (c.num_attention_heads + 2 * c.num_key_value_heads) * c.head_dim * c.hidden_size
    o = c.num_attention_heads * c.head_dim * c.hidden_size
    mlp = 3 * c.intermediate_size * c.hidden_size
    norms = 2 * c.hidden_size + 2 * c.head_dim
    embeddings = c.vocab_size * c.hidden_size * (1 if c.tie_word_embeddings else 2)
    return elem * (c.num_hidden_layers * (qkv + o + mlp + norms) + embeddings + c.hidden_size)


def step_weight_bytes(c, elem: int = 2) -> int:
    """Weight bytes a decode step reads: every parameter but an untied embedding table, of which a step
    reads one row a sequence (a tied one is read whole, as the LM head)."""
    untied_embedding = 0 if c.tie_word_embeddings else c.vocab_size * c.hidden_size
    return weight_bytes(c, elem) - elem * untied_embedding


def kv_bytes(c, batch: int, slots: int, elem: int = 2) -> int:
    """layers x (K and V) x batch x slots x kv_heads x head_dim x bytes."""
    return c.num_hidden_layers * 2 * batch * slots * c.num_key_value_heads * c.head_dim * elem


def prefill_bytes(c, batch: int, context: int) -> int:
    """A generous peak of one prefill forward's activations (prefill_groups' largest piece): the stream,
    q/k/v and their fp32 norm temporaries, the MLP's gate/up output and product. Attention's own
    workspace is left out: it depends on the kernel (a flash kernel needs next to none; SDPA with a
    boolean mask over the cache needs ~3 bytes a query x slot), so an arm that still runs out of memory
    is caught and recorded as such."""
    from qwen3.bench import prefill_groups

    tokens = max(n for _, n in prefill_groups(batch, context)) * context
    qkv = (c.num_attention_heads + 2 * c.num_key_value_heads) * c.head_dim
    return tokens * 2 * (4 * c.intermediate_size + 8 * c.hidden_size + 4 * qkv)


def cell_fits(c, batch: int, context: int, output_len: int, total: int) -> tuple[bool, str]:
    """(fits, what it needs) for one cell on a GPU of `total` bytes. The CUDA graph pads the batch to
    its decode bucket, so the cache holds that many rows."""
    from kernel_space.buckets import DECODE_BUCKETS, bucket_for

    rows, slots = bucket_for(batch, DECODE_BUCKETS), context + output_len
    w, kv, act = weight_bytes(c), kv_bytes(c, rows, slots), prefill_bytes(c, batch, context)
    need = w + kv + act + RESERVE_BYTES
    text = (f"weights {w / 1e9:.1f} GB + KV cache {kv / 1e9:.1f} GB + prefill {act / 1e9:.1f} GB + reserve "
            f"{RESERVE_BYTES / 1e9:.1f} GB = {need / 1e9:.1f} GB of {MEMORY_FRACTION:.0%} x {total / 1e9:.1f} GB")
    return need <= MEMORY_FRACTION * total, text


# --- the result file ----------------------------------------------------------------------------------

def copy_bandwidth() -> float:
    """Bytes read + written per second by a 1 GiB device-to-device copy (the floor's bandwidth)."""
    from benchmarks.attn_bench import copy_bandwidth as measure_copy

    return round(measure_copy())


def step_floor_tok_s(config, batch: int, context: int, bandwidth: float) -> float:
    """Tokens/s if a decode step only had to read the weights it uses (step_weight_bytes) and every
    sequence's K and V once at `context` slots (the bytes a step cannot avoid) at the copy bandwidth.
    Before the eighteenth session it counted an untied embedding table too: Qwen3-8B's floor was 7% low."""
    return batch * bandwidth / (step_weight_bytes(config) + kv_bytes(config, batch, context))


def short_gpu(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'H100': the model number, for file names."""
    match = re.search(r"\b([A-Z]{1,2}\d{2,4}[A-Za-z]?)\b", name)
    return match.group(1) if match else re.sub(r"\W+", "_", name).strip("_")


def load_results(path: Path, header: dict, fresh: bool) -> dict:
    """The results to continue: `path`'s if it exists (same GPU and settings), else a new one."""
    if fresh or not path.exists():
        return {**header, "rows": [], "skipped": []}
    results = json.loads(path.read_text())
    for key, value in header.items():
        if key not in ("date", "copy_bandwidth") and results.get(key) != value:
            raise ValueError(f"{path} holds {key} {results.get(key)!r}, this run {value!r}: pass --fresh or "
                             f"another --out")
    results.setdefault("skipped", [])
    return results


KEY = ("model", "batch", "context", "arm")


def record(results: dict, path: Path, row: dict | None = None, skipped: dict | None = None) -> None:
    """Add a row or a skip note (either replacing what the file held for its cell and arm; a row also
    clears that arm's skip note), then rewrite the file."""
    for entry, lists in ((row, ("rows", "skipped")), (skipped, ("skipped",))):
        if entry is None:
            continue
        key = [entry[k] for k in KEY]
        for name in lists:
            results[name] = [r for r in results[name] if [r[k] for k in KEY] != key]
        results[lists[0]].append(entry)
    results["date"] = datetime.date.today().isoformat()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(path)  # a kill mid-write leaves the previous file whole


def done(results: dict) -> set[tuple]:
    return {tuple(r[k] for k in KEY) for r in results["rows"]}


# --- running ------------------------------------------------------------------------------------------

def run_arm(arm: str, model, dispatchers: dict, batch: int, context: int, args) -> dict:
    """{"decode_tok_s", "prefill_ms"} of one arm on one cell (the peer's also "setup_s": its compile)."""
    if arm == "torch_compile":
        from benchmarks.gptfast_qwen3 import bench_peer

        r = bench_peer(model, batch, context, args.output_len, args.repeats, args.seed, settings_from(args, "peer-"))
        return {"decode_tok_s": r["decode_tok_s"], "prefill_ms": r["prefill_ms"], "setup_s": r["setup_s"]}
    from qwen3.bench import bench_cell

    model.set_dispatcher(dispatchers[arm])
    row = bench_cell(model, arm, batch, context, args.output_len, args.repeats, args.seed)
    # What decode attention's graph ran ("fused", "plan" or "unfused", and why): a row says which config.
    return {"decode_tok_s": row.tokens_per_s, "prefill_ms": row.prefill_ms, "attention": row.attention}


def free(model) -> None:
    """What an arm that failed may have left: the project's KV cache, the peer's compiled graphs."""
    from benchmarks.gptfast_qwen3 import release_compiled
    from qwen3.bench import release_kv_cache

    if model is not None:
        release_kv_cache(model)
    release_compiled()


def measure(cell: dict, arm: str, model, dispatchers: dict, args, results: dict, out: Path) -> dict | None:
    """Run one arm of a cell, record its row (or why it has none) and print one line."""
    import torch

    label, started = f"{cell['model']} batch {cell['batch']:>2} context {cell['context']:>5} {arm:<13}", time.time()
    failure = None
    try:
        got = run_arm(arm, model, dispatchers, cell["batch"], cell["context"], args)
    except torch.cuda.OutOfMemoryError as exc:
        failure = f"out of memory: {exc}".splitlines()[0]  # freed below, once no traceback holds the tensors
    except Exception as exc:
        failure = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if "CUDA error" in str(exc):  # the context is unusable now: say so in the file, then stop
            record(results, out, skipped={**cell, "arm": arm, "reason": failure})
            raise
    if failure is not None:  # out of memory, or a compile that failed: the next arm can still run
        free(model)
        record(results, out, skipped={**cell, "arm": arm, "reason": failure})
        print(f"{label} failed, skipped: {failure}", flush=True)
        return None
    row = {**cell, "arm": arm, **{k: round(v, 2) if isinstance(v, float) else v for k, v in got.items()}}
    record(results, out, row=row)
    print(f"{label} {row['decode_tok_s']:>10,.0f} tok/s  prefill {row['prefill_ms']:>10,.1f} ms  "
          f"({time.time() - started:.0f} s)", flush=True)
    return row


def run_model(spec: str, args, table: Path | None, results: dict, out: Path, total: int) -> None:
    """Every cell of one model that is not in the results yet; weights are made when a cell needs them."""
    import torch

    from qwen3.config import resolve_model

    config, model, dispatchers = resolve_model(spec), None, {}
    for context in args.contexts:
        for batch in args.batches:
            cell = {"model": config.name, "batch": batch, "context": context}
            todo = [a for a in args.arms if (config.name, batch, context, a) not in done(results)]
            fits, need = cell_fits(config, batch, context, args.output_len, total)
            if todo and not fits:
                record(results, out, skipped={**cell, "arm": "all", "reason": f"does not fit: {need}"})
                print(f"{config.name} batch {batch:>2} context {context:>5} skipped: needs {need}", flush=True)
                continue
            if todo and model is None:
                model, dispatchers = load(config, table, args.seed)
            for arm in todo:
                measure(cell, arm, model, dispatchers, args, results, out)
            if todo:
                print(ratio_line(results, cell), flush=True)
    del model, dispatchers
    free(None)
    torch.cuda.empty_cache()


def load(config, table: Path | None, seed: int):
    """Random bf16 weights on the GPU and the arms' dispatchers, after one short cell that is thrown
    away (qwen3.bench.first_cell: a process's first cell is not like the later ones)."""
    import torch

    from qwen3.bench import first_cell
    from qwen3.dispatch import Dispatcher
    from qwen3.loader import random_weights

    model = random_weights(config, torch.bfloat16, "cuda", seed)
    first_cell(model, seed)
    return model, {"unfused": Dispatcher(), **({"table": Dispatcher(table)} if table else {})}


def ratio_line(results: dict, cell: dict) -> str:
    by = {r["arm"]: r for r in results["rows"] if all(r[k] == cell[k] for k in cell)}
    if "table" not in by or "torch_compile" not in by:
        return f"{'':>38}(no table / torch_compile ratio: an arm is missing)"
    t, p = by["table"], by["torch_compile"]
    return (f"{'':>38}table / torch_compile: decode {t['decode_tok_s'] / p['decode_tok_s']:.2f}x, "
            f"prefill time {t['prefill_ms'] / p['prefill_ms']:.2f}x")


# --- markdown -----------------------------------------------------------------------------------------

def render(files: list[dict]) -> str:
    """The result files as markdown tables for benchmarks/README.md, one per GPU."""
    out = []
    for gpu in dict.fromkeys(f["gpu"] for f in files):
        mine = [f for f in files if f["gpu"] == gpu]
        rows = {tuple(r[k] for k in KEY): r for f in mine for r in f["rows"]}
        first = mine[0]
        out += [f"{gpu}, {', '.join(sorted({f['date'] for f in mine}))}: {first.get('output_len')} tokens decoded "
                f"after the prompt, median of {first.get('repeats')} runs; torch.compile: {first.get('torch_compile')}",
                "", "| model | context | batch | unfused tok/s | table tok/s | torch.compile tok/s | "
                "table / torch.compile | unfused prefill ms | table prefill ms | torch.compile prefill ms | "
                "prefill time table / torch.compile | floor tok/s | table / floor |", "|---|---:|---:|" + "---:|" * 10]
        models = list(dict.fromkeys(k[0] for k in rows))
        for model, batch, context in sorted({k[:3] for k in rows}, key=lambda k: (models.index(k[0]), k[2], k[1])):
            arm = {a: rows.get((model, batch, context, a)) for a in ARMS}
            # A combined file (several processes, each measuring its own) keeps each row's bandwidth.
            table_row = arm["table"] or {}
            floor = _floor(model, batch, context, table_row.get("copy_bandwidth") or first.get("copy_bandwidth"))
            share = f"{arm['table']['decode_tok_s'] / floor:.0%}" if floor and arm["table"] else "-"
            out.append(f"| {model} | {context:,} | {batch} | " + " | ".join(_cells(arm)) + " | "
                       + (f"{floor:,.0f} | {share} |" if floor else "- | - |"))
        notes = {(s["model"], s["batch"], s["context"], s["arm"]): s["reason"] for f in mine for s in f["skipped"]}
        out += [""] + [f"- not measured: {m} batch {b} context {c:,} ({a}): {why}"
                       for (m, b, c, a), why in sorted(notes.items())] + [""]
    return "\n".join(out)


def _floor(model: str, batch: int, context: int, bandwidth: float | None) -> float | None:
    """The cell's floor tok/s (step_floor_tok_s) where the file has its copy bandwidth and the model resolves."""
    from qwen3.config import resolve_model

    if not bandwidth:
        return None
    try:
        return step_floor_tok_s(resolve_model(model), batch, context, bandwidth)
    except ValueError:
        return None


def _cells(arm: dict) -> list[str]:
    def value(name, key, fmt):
        return format(arm[name][key], fmt) if arm[name] else "-"

    def ratio(key, fmt="{:.2f}x"):
        t, p = arm["table"], arm["torch_compile"]
        return fmt.format(t[key] / p[key]) if t and p else "-"

    return ([value(a, "decode_tok_s", ",.0f") for a in ARMS] + [ratio("decode_tok_s")]
            + [value(a, "prefill_ms", ",.1f") for a in ARMS] + [ratio("prefill_ms")])


def check_inputs(args) -> dict[str, Path]:
    """The tables by model, once every model resolves and every context fits its positions (ValueError)."""
    from qwen3.config import resolve_model

    for spec in args.models:
        config = resolve_model(spec)
        if args.contexts[-1] + args.output_len > config.max_position_embeddings:
            raise ValueError(f"context {args.contexts[-1]} + --output-len {args.output_len} exceeds {config.name}'s "
                             f"max_position_embeddings {config.max_position_embeddings}")
    return parse_tables(args.table, args.models, args.arms)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render:
        print(render([json.loads(path.read_text()) for path in args.render]))
        return 0
    import torch

    try:
        tables = check_inputs(args)
        if not torch.cuda.is_available():
            raise ValueError("the matrix needs a CUDA GPU")
        gpu, today = torch.cuda.get_device_name(), datetime.date.today().isoformat()
        out = args.out or Path(f"benchmarks/results/e2e_matrix_{short_gpu(gpu)}_{today}.json")
        header = {"gpu": gpu, "date": today, "output_len": args.output_len, "repeats": args.repeats,
                  "torch_compile": asdict(settings_from(args, "peer-")), "copy_bandwidth": copy_bandwidth()}
        results = load_results(out, header, args.fresh)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{gpu}: writing {out}", flush=True)
    total = torch.cuda.get_device_properties(0).total_memory
    for spec in args.models:
        run_model(spec, args, tables.get(spec), results, out, total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
