"""Decode attention on the GPU: kernel_space.decode_attention (its default plan and a small sweep of
configs around it) against PyTorch SDPA and the bandwidth floor, at Qwen3-0.6B and 8B head shapes.

    python3 benchmarks/attn_bench.py OUT.json [--models qwen3-0.6b,qwen3-8b] [--batches 1,8,32]
                                              [--contexts 256,2048,8192,32768] [--random 4]

Per (model, batch, context), every sequence at the full context, bf16:
- correct first: each arm's output is compared with the fp64 reference (first two sequences) with its
  outputs poisoned with NaN, at the full length and again at mixed per-sequence lengths;
- timed as DESIGN.md says: KV cache cold in L2 (launches rotate over cache copies totalling >= 4x L2,
  or one cache that alone is), one CUDA graph of >= 32 launches, median (p20, p80) of 15 replays;
- floor = bytes a launch must move (K and V of every slot, q in, o out) / the copy bandwidth this
  script measures (a 1 GiB device-to-device copy, bytes read + written per second).
Arms: `plan` (attention_plan's config), `sweep` (its neighbours in SPLITS, BLOCK_N, warps, stages,
pack, combine, and --random configs sampled from SPACE), `sdpa_mask` (the runtime's PyTorch path:
the whole cache with a mask, whatever backend SDPA picks), `sdpa_flash` and `sdpa_efficient` (that
backend forced, no mask: what a varlen-free static-cache model gets when every length is equal).
At batch 1 also `partials` (the plan's config leaving its partials uncombined, as the model runs it
where the table folds the combine into o_proj: no combine is timed) and `partials_sweep` (the same at
other split counts, 16-64); they are checked combined by kernel_space.combine_o_proj through an
identity o_proj, which returns o exactly.
Writes JSON to OUT.json and prints one line per cell. Needs torch and triton only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernel_space._common import poisoned_outputs, rel_error
from kernel_space.combine_o_proj import o_proj_residual_combined
from kernel_space.decode_attention import (
    SPACE,
    SPLITS_VALUES,
    AttentionProblem,
    SplitPartials,
    attention_plan,
    check_config,
    decode_attention,
    decode_attention_reference,
    decode_attention_unfused,
    leaves_partials,
    make_inputs,
    redundant_reason,
    sample_configs,
)

SHAPES = {"qwen3-0.6b": (16, 8, 128), "qwen3-8b": (32, 8, 128)}  # heads, KV heads, head_dim
COLD_L2_FACTOR, MIN_LAUNCHES, REPLAYS, TOLERANCE = 4, 32, 15, 1e-2
PARTIALS_SPLITS = (16, 24, 32, 48, 64)  # the batch-1 arms that leave their partials to o_proj


def copy_bandwidth(nbytes: int = 2**30) -> float:
    """Bytes read + written per second by a large device-to-device copy (median of 10)."""
    src = torch.empty(nbytes // 2, dtype=torch.bfloat16, device="cuda").normal_()
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    times = []
    for _ in range(10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return 2 * nbytes / statistics.median(times)


def sdpa_forced(backend):
    """SDPA with one backend forced, over the whole cache, no mask (every length equal to it); GQA as
    the runtime folds it: a KV head's query group becomes its query rows (no K/V copy)."""
    from torch.nn.attention import sdpa_kernel

    def run(q, k_cache, v_cache, positions, scale):
        b, _, h, hd = q.shape
        kv = k_cache.shape[2]
        with sdpa_kernel([backend]):
            o = F.scaled_dot_product_attention(q.view(b, kv, h // kv, hd), k_cache.transpose(1, 2),
                                               v_cache.transpose(1, 2), scale=scale)
        return o.reshape(b, 1, h * hd)

    return run


def fused(cfg):
    return lambda q, k_cache, v_cache, positions, scale: decode_attention(q, k_cache, v_cache, positions, scale,
                                                                          0, cfg)


def left_partials(cfg):
    """The batch-1 launch that leaves its partials to o_proj (timed: no combine runs); its `checked`
    is the same launch combined by the fold through an identity o_proj (o, exactly, in q's dtype)."""
    def run(q, k_cache, v_cache, positions, scale):
        return decode_attention(q, k_cache, v_cache, positions, scale, 0, cfg, partials=True)

    def combined(q, k_cache, v_cache, positions, scale):
        parts = run(q, k_cache, v_cache, positions, scale)
        if not isinstance(parts, SplitPartials):
            return parts
        width = q.shape[2] * q.shape[3]
        eye = torch.eye(width, dtype=q.dtype, device=q.device)
        residual = torch.zeros((1, width), dtype=q.dtype, device=q.device)
        return o_proj_residual_combined(parts, residual, eye).view(1, 1, width)

    run.checked = combined
    return run


def neighbours(plan: dict, problem: AttentionProblem, random_count: int, sms: int) -> list[dict]:
    """The plan changed in one parameter at a time, then random configs of SPACE; runnable, not
    redundant, no repeats, the plan itself left out."""
    i = SPLITS_VALUES.index(plan["SPLITS"])
    changes = [{"SPLITS": s} for s in SPLITS_VALUES[max(0, i - 2):i] + SPLITS_VALUES[i + 1:i + 3]]
    other_combine = {"combine": "kernel" if plan["combine"] == "last_program" else "last_program"}
    changes += [other_combine, {"pack": "head", "num_stages": 1}, {"BLOCK_N": 32}, {"BLOCK_N": 128},
                {"num_stages": 1}, {"num_stages": 3}, {"num_warps": 2}, {"num_warps": 8}]
    candidates = [{**plan, **c} for c in changes]
    # From a prepared q, as this bench times attention: prep=fused configs take the qkv rows (attn_step_probe).
    candidates += sample_configs(problem, random_count + 1, seed=problem.batch * 7 + problem.context, sm_count=sms,
                                 prep="separate")[1:]
    out = []
    for cfg in candidates:
        if cfg != plan and cfg not in out and not check_config(cfg, problem) and not redundant_reason(cfg, problem):
            out.append(cfg)
    return out


def check(fn, inputs: dict, lengths: list[int] | None) -> float:
    """Worst relative error of fn's first two sequences against the fp64 reference, at the full
    length and at `lengths` (None: an arm that takes no per-sequence lengths), outputs poisoned."""
    worst = 0.0
    mixed = [] if lengths is None else [torch.tensor(lengths, device=inputs["q"].device)[:, None] - 1]
    for positions in [inputs["positions"], *mixed]:
        args = {**inputs, "positions": positions}
        with poisoned_outputs():
            out = getattr(fn, "checked", fn)(**args)
        n = min(2, out.shape[0])
        ref = decode_attention_reference(args["q"][:n], args["k_cache"][:n], args["v_cache"][:n],
                                         positions[:n], args["scale"])
        worst = max(worst, rel_error(out[:n], ref))
    return worst


def time_graph(fn, rotation: list[dict]) -> tuple[float, float, float]:
    """Per-launch us (median, p20, p80) of >= MIN_LAUNCHES launches rotating over the copies, one graph."""
    launches = len(rotation) * math.ceil(MIN_LAUNCHES / len(rotation))
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for inputs in rotation[:2]:
            fn(**inputs)
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(launches):
            fn(**rotation[i % len(rotation)])
    graph.replay()
    samples = []
    for _ in range(REPLAYS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) * 1e3 / launches)
    del graph
    q = statistics.quantiles(samples, n=10, method="inclusive")
    return statistics.median(samples), q[1], q[7]


def arms(problem: AttentionProblem, random_count: int, sms: int) -> list[tuple[str, dict | None, object, bool]]:
    """(name, config, fn, takes per-sequence lengths) of every arm of a cell."""
    from torch.nn.attention import SDPBackend

    plan = attention_plan(problem.batch, problem.heads, problem.kv_heads, problem.head_dim, problem.context, sms)
    out = [("plan", plan, fused(plan), True)]
    out += [("sweep", cfg, fused(cfg), True) for cfg in neighbours(plan, problem, random_count, sms)]
    if problem.batch == 1:
        for splits in sorted({plan["SPLITS"], *PARTIALS_SPLITS}):
            cfg = {**plan, "SPLITS": splits, "combine": "kernel"}
            if leaves_partials(cfg, problem) and not check_config(cfg, problem):
                out.append(("partials" if splits == plan["SPLITS"] else "partials_sweep", cfg, left_partials(cfg),
                            True))
    out += [("sdpa_mask", None, decode_attention_unfused, True),
            ("sdpa_flash", None, sdpa_forced(SDPBackend.FLASH_ATTENTION), False),
            ("sdpa_efficient", None, sdpa_forced(SDPBackend.EFFICIENT_ATTENTION), False)]
    return out


def bench_cell(model: str, batch: int, context: int, args, env: dict) -> list[dict]:
    heads, kv, hd = SHAPES[model]
    problem = AttentionProblem(batch, heads, kv, hd, context, "bfloat16")
    moved = problem.kv_bytes() + 2 * batch * heads * hd * problem.elem_bytes  # K, V; q in, o out
    copies = max(1, math.ceil(COLD_L2_FACTOR * env["l2_bytes"] / problem.kv_bytes()))
    gen = torch.Generator(device="cuda").manual_seed(batch + context)
    rotation = [make_inputs(problem, "cuda", gen) for _ in range(copies)]
    lengths = [max(1, context * (i + 1) // (batch + 1) - i) for i in range(batch)]  # unequal, 1..context
    base = {"model": model, "batch": batch, "context": context, "floor_us": 1e6 * moved / env["bandwidth"],
            "kv_bytes": problem.kv_bytes(), "copies": copies}
    rows = []
    for arm, cfg, fn, varlen in arms(problem, args.random, env["sms"]):
        row = {**base, "arm": arm, "config": cfg}
        try:
            row["rel_err"] = check(fn, rotation[0], lengths if varlen else None)
            if not row["rel_err"] <= TOLERANCE:
                raise RuntimeError(f"wrong result: relative error {row['rel_err']:.3g} > {TOLERANCE}")
            row["median_us"], row["p20_us"], row["p80_us"] = time_graph(fn, rotation)
            row["of_floor"] = row["floor_us"] / row["median_us"]
        except Exception as exc:  # a backend SDPA lacks, a config that fails: a row with its reason
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        rows.append(row)
    del rotation
    torch.cuda.empty_cache()
    return rows


def summary(rows: list[dict]) -> str:
    def us(arm):
        timed = [r for r in rows if r["arm"] == arm and "median_us" in r]
        return min(timed, key=lambda r: r["median_us"]) if timed else None

    r0 = rows[0]
    plan, best = us("plan"), us("sweep")
    cells = [f"{r0['model']:>10} b{r0['batch']:<3} ctx{r0['context']:<6} floor {r0['floor_us']:8.1f}"]
    for arm in ("plan", "sweep", "partials", "partials_sweep", "sdpa_mask", "sdpa_flash", "sdpa_efficient"):
        r = us(arm)
        if r is None and arm.startswith("partials"):
            continue
        cells.append(f"{arm} {r['median_us']:8.1f} ({r['of_floor']:4.0%})" if r else f"{arm} {'-':>8}       ")
    if plan and best and best["median_us"] < plan["median_us"]:
        changed = {k: v for k, v in best["config"].items() if v != plan["config"].get(k)}
        cells.append(f"best sweep changes {changed}")
    best_partials = us("partials_sweep")
    if best_partials and (not us("partials") or best_partials["median_us"] < us("partials")["median_us"]):
        cells.append(f"best partials SPLITS {best_partials['config']['SPLITS']}")
    return " | ".join(cells)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="JSON result path")
    p.add_argument("--models", default="qwen3-0.6b,qwen3-8b")
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--contexts", default="256,2048,8192,32768")
    p.add_argument("--random", type=int, default=4, help="random configs of SPACE per cell, beside the neighbours")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("attn_bench needs a CUDA GPU", file=sys.stderr)
        return 2
    import triton

    props = torch.cuda.get_device_properties(0)
    env = {"gpu": props.name, "sms": props.multi_processor_count,
           "l2_bytes": int(getattr(props, "L2_cache_size", 50 * 2**20)), "bandwidth": copy_bandwidth(),
           "torch": torch.__version__, "triton": triton.__version__, "date": dt.date.today().isoformat(),
           "space": {k: list(v) for k, v in SPACE.values.items()}}
    print(f"{env['gpu']}: {env['sms']} SMs, L2 {env['l2_bytes'] / 2**20:.0f} MiB, copy {env['bandwidth'] / 1e12:.2f} "
          f"TB/s; us per launch (share of the floor)", flush=True)
    rows = []
    for model in args.models.split(","):
        for batch in map(int, args.batches.split(",")):
            for context in map(int, args.contexts.split(",")):
                cell = bench_cell(model, batch, context, args, env)
                rows += cell
                print(summary(cell), flush=True)
                Path(args.out).write_text(json.dumps({**env, "rows": rows}, indent=1))  # kept if a later cell dies
    return 0


if __name__ == "__main__":
    sys.exit(main())
