"""Every fused op on the GPU: correctness in bf16, then fused (best of a sampled sweep) vs the unfused
path vs the cuBLAS GEMM alone vs the HBM floor, per model shape and M, in one run.

    python benchmarks/bench_ops.py --models qwen3-0.6b,qwen3-8b --out benchmarks/results

Measured as DESIGN.md says: every config checked against the fp64 reference on fresh inputs with its
outputs poisoned; CUDA graph of many launches; weights cold in L2; median of >= 10 replays; the best
fused config confirmed against the unfused path by interleaved (A B A B) replays.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kernel_space as ks
from kernel_space.fingerprint import current_fingerprint
from kernel_space.spec import Problem
from qwen3.config import resolve_model
from tuner import measure
from tuner.candidates import n_out, sample_configs
from tuner.compile import precompile
from tuner.trial import run_trial

DEFAULT_MS = "1,2,4,8,16,32,64,128,256,1024"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="qwen3-0.6b,qwen3-8b")
    p.add_argument("--ops", default=",".join(ks.OPS))
    p.add_argument("--ms", default=DEFAULT_MS)
    p.add_argument("--samples", type=int, default=16, help="fused configs per (op, M), defaults included")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.environ.get("OUT", "benchmarks/results"))
    p.add_argument("--tag", default="", help="suffix of the result file name")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_ops needs a CUDA GPU", file=sys.stderr)
        return 2
    device = "cuda"
    dtype = torch.bfloat16
    props = torch.cuda.get_device_properties(0)
    smem_limit = getattr(props, "shared_memory_per_block_optin", ks.spec.DEFAULT_SMEM_LIMIT)
    bandwidth = measure.measure_copy_bandwidth(device)
    flop_rate = measure.measure_matmul_rate(device)
    print(f"{props.name}: {props.multi_processor_count} SMs, L2 {measure.l2_bytes(0) / 2**20:.0f} MiB, "
          f"copy {bandwidth / 1e12:.2f} TB/s, bf16 matmul {flop_rate / 1e12:.0f} TFLOP/s", flush=True)
    ms = [int(x) for x in args.ms.split(",")]
    ops = args.ops.split(",")
    rows = []
    t_start = time.perf_counter()
    for model_name in args.models.split(","):
        shapes = ks.op_shapes(resolve_model(model_name).dims())
        # One compile pool for the whole model: every (op, M, config) the sweep will run.
        plan = {}
        for op in ops:
            n, k = shapes[op]
            for m in ms:
                plan[(op, m)] = sample_configs(op, m, n, k, dtype.itemsize, args.samples, seed=args.seed,
                                               sm_count=props.multi_processor_count, smem_limit=smem_limit)
        jobs = [(Problem(op, m, *shapes[op], "bfloat16"), c) for (op, m), cs in plan.items() for c in cs]
        t0 = time.perf_counter()
        compiled = precompile(jobs)
        failed = sum(1 for _, err in compiled if err)
        print(f"{model_name}: compiled {len(jobs)} configs in {time.perf_counter() - t0:.0f}s "
              f"({failed} failed)", flush=True)
        for op in ops:
            n, k = shapes[op]
            for m in ms:
                rows.append(_bench_case(model_name, op, m, n, k, dtype, device, plan[(op, m)], smem_limit,
                                        bandwidth, flop_rate, args.seed))
                _print_row(rows[-1])
    wall = time.perf_counter() - t_start
    result = {
        "gpu": props.name,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
        "fingerprint": current_fingerprint(),
        "copy_bandwidth_Bps": bandwidth,
        "bf16_matmul_flops": flop_rate,
        "samples_per_case": args.samples,
        "wall_s": wall,
        "rows": rows,
    }
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    gpu_tag = props.name.replace(" ", "_").replace("/", "_")
    path = out_dir / f"bench_ops_{gpu_tag}_{result['date']}{args.tag}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path} ({wall:.0f}s)")
    bad = [r for r in rows if r["incorrect"]]
    if bad:
        print(f"INCORRECT configs in {len(bad)} cases: " + "; ".join(f"{r['model']} {r['op']} M={r['m']}"
                                                                  for r in bad))
    return 1 if bad else 0


def _bench_case(model, op, m, n, k, dtype, device, configs, smem_limit, bandwidth, flop_rate, seed):
    spec = ks.get_op(op)
    rotation = measure.rotation_inputs(spec, m, n, k, dtype, device, seed=seed)
    problem = Problem(op, m, n, k, str(dtype).removeprefix("torch."))
    unfused = run_trial(problem, "unfused", None, device, rotation, seed + 1)
    cublas = run_trial(problem, "cublas", None, device, rotation, seed + 2)
    trials = [run_trial(problem, "fused", c, device, rotation, seed + 3 + i, smem_limit)
              for i, c in enumerate(configs)]
    ok = [t for t in trials if t.status == "ok"]
    best = min(ok, key=lambda t: t.median_us) if ok else None
    row = {
        "model": model, "op": op, "m": m, "n": n, "k": k, "n_out": n_out(op, n),
        "floor_us": measure.floor_us(spec, m, n, k, dtype, device, bandwidth, flop_rate),
        "unfused_us": unfused.median_us, "unfused_error": unfused.rel_error,
        "cublas_us": cublas.median_us,
        "configs_tried": len(trials), "configs_ok": len(ok),
        "incorrect": [t.to_dict() for t in trials if t.status == "incorrect"],
        "failed": [t.to_dict() for t in trials if t.status == "failed"],
        "max_error": max((t.rel_error for t in ok), default=None),
        "trials": [t.to_dict() for t in trials],
    }
    if best is not None:
        speedup, t_fused, t_unfused = measure.paired_speedup(
            measure.arm_fn(spec, "fused", best.config), measure.arm_fn(spec, "unfused", None), rotation)
        row.update(best_config=best.config, fused_us=best.median_us, fused_p20_us=best.p20_us,
                   fused_p80_us=best.p80_us, fused_error=best.rel_error, paired_speedup_vs_unfused=speedup,
                   paired_fused_us=t_fused.median_us, paired_unfused_us=t_unfused.median_us)
    del rotation
    torch.cuda.empty_cache()
    return row


def _print_row(r):
    fused = r.get("fused_us")
    f = f"{fused:7.1f}" if fused else "    n/a"
    vs = f"{r['cublas_us'] / fused:5.2f}x" if fused else "  n/a"
    fl = f"{fused / r['floor_us']:5.2f}" if fused else "  n/a"
    cfg = ks.config_key(r["best_config"]) if fused else "-"
    print(f"{r['model']:11s} {r['op']:21s} M={r['m']:5d} floor {r['floor_us']:7.1f} fused {f} "
          f"unfused {r['unfused_us']:7.1f} cublas {r['cublas_us']:7.1f} | vs cublas {vs} floorx {fl} "
          f"ok {r['configs_ok']}/{r['configs_tried']} err {r['max_error'] or 0:.1e} | {cfg}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
