"""Decode attention configs timed alone and inside the model's decode step, side by side.

    python3 benchmarks/attn_step_probe.py OUT.json --model qwen3-0.6b --batches 1,8 --context 4032 \\
        [--table dispatch.json [--gemm-table]] [--config '{"SPLITS": 8, ...}' ...]

Why: a tune of decode_attention picked a config that measured faster alone (benchmarks/attn_bench.py's
method: KV cache cold in L2, one CUDA graph, median) while the decode step ran slower with it. Per
batch this times every config alone, over the cell's cache shape, and as the attention of a
CUDA-graph decode step (qwen3.bench.bench_cell, random weights), the plan (no config) included. The
plan is plan_from_qkv's (what the model runs without a config). The table's decode_attention configs,
each also with the other combine, the plan with the other combine, and where the plan is kv=early the
loop plan and the plan with the other prep, and the loop plan with prep fused are the default arms. A
--config is laid over the batch's plan: '{"prep": "fused", "kv": "loop"}' is the loop plan with the q/k
norm, RoPE and cache write inside the attention kernel.

--skip-combine adds an upper bound for folding the combine into the kernel after attention (issue 10): the
plan with combine=kernel, its combine kernel not launched (o is left as it was: wrong tokens, the same
kernels otherwise), step only.

Alone is timed twice: alone_us is the attention kernel from a prepared q (prep=separate configs only,
as before prep was a key), alone_prep_us the work from the qkv rows, qk_norm_rope_cache included for
prep=separate (what the tuner times since prep is a key; kernel_space.decode_attention.AttentionOpSpec).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.attn_bench import COLD_L2_FACTOR, check, fused, time_graph
from kernel_space._common import poisoned_outputs, rel_error
from kernel_space.attention_shape import decode_m
from kernel_space.decode_attention import (
    SPEC,
    AttentionProblem,
    attention_plan,
    check_config,
    decode_attention_prep,
    kv_of,
    make_inputs,
    make_prep_inputs,
    plan_from_qkv,
    prep_of,
)
from qwen3.bench import bench_cell, first_cell
from qwen3.config import PRESETS
from qwen3.dispatch import Dispatcher
from qwen3.loader import random_weights


def table_configs(path: Path, batch: int) -> list[dict]:
    entry = json.loads(path.read_text())["ops"].get("decode_attention", {})
    out = []
    for bucket in entry.get("buckets", []):
        if decode_m(bucket["m"])[0] == batch and bucket.get("arm") == "fused":
            cfg = bucket["config"]
            other = {**cfg, "combine": "kernel" if cfg["combine"] == "last_program" else "last_program"}
            out += [cfg] + ([other] if cfg["SPLITS"] > 1 else [])
    return out


def from_qkv(cfg: dict):
    """The work from the qkv rows to o with cfg (both preps), called with make_prep_inputs' dict."""
    def run(qkv, q_norm_w, k_norm_w, cos, sin, eps, k_cache, v_cache, positions, scale):
        return decode_attention_prep(qkv, q_norm_w, k_norm_w, cos, sin, eps, k_cache, v_cache, positions, scale, 0,
                                     cfg)

    return run


def check_from_qkv(cfg: dict, inputs: dict) -> float:
    """Relative error of from_qkv(cfg) against the op's reference (the model's prep, fp64 attention)."""
    with poisoned_outputs():
        out = from_qkv(cfg)(**inputs)
    return rel_error(out, SPEC.reference(inputs)[0])


def time_alone(row: dict, shown: dict, rotation: list[dict], prep_rotation: list[dict]) -> None:
    """alone_us (attention from q, prep=separate only) and alone_prep_us (from the qkv rows) into row."""
    if prep_of(shown) == "separate":
        row["rel_err"] = check(fused(shown), rotation[0], None)
        row["alone_us"] = time_graph(fused(shown), rotation)[0]
    row["prep_rel_err"] = check_from_qkv(shown, prep_rotation[0])
    row["alone_prep_us"] = time_graph(from_qkv(shown), prep_rotation)[0]


def _prefetch_chunk_heads(share: float) -> None:
    """Replace decode_attention.prefetch_slots in this process: where it prefetches nothing while PDL
    is on and the grid small, take the whole tiles at the start of each chunk that fit in `share` of L2."""
    import kernel_space.decode_attention as da

    rule = da.prefetch_slots

    def head_rule(problem, config, programs, device):
        slots = rule(problem, config, programs, device)
        if slots or not da._gemm.pdl_enabled(device) or programs > 2 * da._sm_count(device):
            return slots
        slot_bytes = 2 * problem.head_dim * problem.elem_bytes  # K and V of one slot of one head
        fits = int(da._gemm.l2_bytes(device) * share // (programs * slot_bytes))
        return fits // config["BLOCK_N"] * config["BLOCK_N"]

    da.prefetch_slots = head_rule


@contextlib.contextmanager
def no_combine():
    """Inside, decode attention's combine kernel is not launched (kernel_space.decode_attention._launch_combine)."""
    import kernel_space.decode_attention as da

    launch, da._launch_combine = da._launch_combine, lambda *args, **kwargs: None
    try:
        yield
    finally:
        da._launch_combine = launch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--model", default="qwen3-0.6b")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--context", type=int, default=4032)
    p.add_argument("--output-len", type=int, default=32)
    p.add_argument("--table", type=Path, help="its decode_attention configs become arms, and with --gemm-table the "
                   "GEMM sites run its configs (the bench's table arm) instead of the unfused path")
    p.add_argument("--gemm-table", action="store_true")
    p.add_argument("--config", action="append", default=[], help="a config as JSON (repeatable)")
    p.add_argument("--kv-prefetch-head", type=float, metavar="SHARE",
                   help="an experiment on the K/V prefetch before PDL's wait: where whole chunks do not fit "
                        "(decode_attention.prefetch_slots prefetches nothing there), prefetch the whole BLOCK_N "
                        "tiles at the start of each program's chunk that fit in SHARE of L2")
    p.add_argument("--skip-combine", action="store_true", help="add the plan with combine=kernel and its combine "
                   "kernel not launched (wrong output; the step's time without a combine)")
    args = p.parse_args(argv)
    if args.kv_prefetch_head is not None:
        _prefetch_chunk_heads(args.kv_prefetch_head)
    config = PRESETS[args.model]
    heads, kv, hd = config.num_attention_heads, config.num_key_value_heads, config.head_dim
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    model = random_weights(config, torch.bfloat16, "cuda", seed=0)
    if args.gemm_table:
        if args.table is None:
            p.error("--gemm-table needs --table")
        model.set_dispatcher(Dispatcher(args.table))  # attention: its rows where current, else the plan
    first_cell(model)  # a process's first cell is not like the later ones (qwen3.bench.first_cell)
    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        slots = args.context + args.output_len  # the step's cache: context + output_len slots
        problem = AttentionProblem(batch, heads, kv, hd, slots, "bfloat16")
        plan = plan_from_qkv(batch, heads, kv, hd, slots, sms)  # what the model runs for None
        configs = [None] + (table_configs(args.table, batch) if args.table else [])
        configs += [json.loads(c) for c in args.config]
        loop = attention_plan(batch, heads, kv, hd, slots, sms, early=False)
        other = "separate" if prep_of(plan) == "fused" else "fused"
        configs += [{**plan, "combine": "kernel" if plan["combine"] == "last_program" else "last_program"},
                    *([loop, {**plan, "prep": other}] if loop != plan else []), {**loop, "prep": "fused"}]
        gen = torch.Generator(device="cuda").manual_seed(batch)
        copies = max(1, math.ceil(COLD_L2_FACTOR * l2 / problem.kv_bytes()))
        rotation = [make_inputs(problem, "cuda", gen) for _ in range(copies)]
        prep_rotation = [make_prep_inputs(problem, "cuda", gen) for _ in range(copies)]
        skip = {**plan, "combine": "kernel", "skip_combine": True}
        for cfg in configs + ([skip] if args.skip_combine and plan["SPLITS"] > 1 else []):
            skipped = bool(cfg and cfg.get("skip_combine"))
            if skipped:
                cfg = {k: v for k, v in cfg.items() if k != "skip_combine"}
                model.set_attention_config(cfg)
                with no_combine():
                    bench = bench_cell(model, "probe", batch, args.context, args.output_len, repeats=5)
                rows.append({"batch": batch, "context": args.context, "config": cfg, "is_plan": False,
                             "combine_skipped": True, "step_ms": bench.decode_ms, "tok_s": bench.tokens_per_s})
                print(f"batch {batch:2d} ctx {args.context} skip S{cfg['SPLITS']:>2} N{cfg['BLOCK_N']:>3} no combine "
                      f"kernel: step {bench.decode_ms:.3f} ms ({bench.tokens_per_s:,.0f} tok/s)", flush=True)
                continue
            shown = plan if cfg is None else {**plan, **cfg}
            reason = check_config(shown, problem)
            row = {"batch": batch, "context": args.context, "config": shown, "is_plan": cfg is None}
            if reason:
                rows.append({**row, "error": reason})
                continue
            time_alone(row, shown, rotation, prep_rotation)
            model.set_attention_config(None if cfg is None else shown)
            bench = bench_cell(model, "probe", batch, args.context, args.output_len, repeats=5)
            row["step_ms"], row["tok_s"] = bench.decode_ms, bench.tokens_per_s
            rows.append(row)
            alone = f"{row['alone_us']:7.1f}" if "alone_us" in row else "      -"
            print(f"batch {batch:2d} ctx {args.context} {'plan ' if cfg is None else 'cfg  '}"
                  f"S{shown['SPLITS']:>2} N{shown['BLOCK_N']:>3} {shown['pack']:5s} {shown['combine']:12s} "
                  f"w{shown['num_warps']} s{shown['num_stages']} prep {prep_of(shown):8s} kv {kv_of(shown):5s}: "
                  f"alone {alone} us, "
                  f"from qkv {row['alone_prep_us']:7.1f} us, step {row['step_ms']:.3f} ms ({row['tok_s']:,.0f} tok/s)",
                  flush=True)
        model.set_attention_config(None)
        del rotation, prep_rotation
        torch.cuda.empty_cache()
    args.out.write_text(json.dumps({"gpu": torch.cuda.get_device_name(0), "date": dt.date.today().isoformat(),
                                    "model": args.model, "gemm_table": str(args.table) if args.gemm_table else None,
                                    "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
