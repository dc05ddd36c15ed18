"""Reproduce issue 13's illegal memory access (and show it fixed): decode configs of the 8B H100 table
run at prefill sizes, each checked against the unfused path.

`kernel-search bench --model qwen3-8b --batch 8 --prompt-len 8192` faulted in rmsnorm_gate_up_silu's
fused launcher at the M = 65,536 prefill, running the table's M = 32 config: its split-K partial offset
3 * 65,536 * 24,576 passed 2^31. Here every op runs at the 8B shapes and that M with the config the
table holds for its largest fused bucket, plus an lm_head-sized N = 151,936 (out offsets m * N pass
2^31 at 16k tokens) through the norm launcher and, split-K, through the residual launcher.

Each case runs in its own process (a fault kills the CUDA context, and should not take the other cases
with it), with random inputs, outputs poisoned with NaN before the launch; prints one line and the
whole run goes to JSON. Peak memory stays under ~30 GB a case (an 80 GB GPU). Run from the repo root:

    PYTHONPATH=$PWD python3 benchmarks/repro_oob.py benchmarks/results/repro_oob_<GPU>_after.json

and, for "before", with PYTHONPATH pointing at a checkout without the fix (the script is the same).
Needs torch and triton only (no optuna, no sqlalchemy).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

# The 8B H100 table (benchmarks/results/dispatch_qwen3-8b_H100.json): the configs of the largest fused
# bucket per op, copied so the repro stays the same when the table is re-tuned.
_COMMON = dict(impl="fused", path="dot", GROUP_M=1)
GATE_UP_M32 = dict(_COMMON, BLOCK_M=32, BLOCK_N=128, BLOCK_K=64, SPLIT_K=4, num_warps=8, num_stages=3,
                   split_reduce="last_program", prologue="prepass")
QKV_M32 = dict(_COMMON, BLOCK_M=16, BLOCK_N=16, BLOCK_K=128, SPLIT_K=1, num_warps=2, num_stages=5,
               split_reduce="kernel", prologue="prepass")
O_PROJ_M8 = dict(_COMMON, BLOCK_M=16, BLOCK_N=16, BLOCK_K=128, SPLIT_K=2, num_warps=2, num_stages=5,
                 split_reduce="last_program", prologue="inline")  # its M = 32 bucket picked unfused
DOWN_M8 = dict(_COMMON, BLOCK_M=16, BLOCK_N=64, BLOCK_K=128, SPLIT_K=8, num_warps=4, num_stages=4,
               split_reduce="last_program", prologue="inline")  # its M = 32 bucket picked unfused

PREFILL_M = 65_536  # batch 8 x 8,192-token prompts
VOCAB = 151_936

# name -> (op launcher, M, W rows N, K, config)
CASES = {
    "gate_up_8b_m65536": ("rmsnorm_gate_up_silu", PREFILL_M, 24_576, 4096, GATE_UP_M32),
    "qkv_8b_m65536": ("rmsnorm_qkv", PREFILL_M, 6144, 4096, QKV_M32),
    "o_proj_8b_m65536": ("o_proj_residual", PREFILL_M, 4096, 4096, O_PROJ_M8),
    "down_8b_m65536": ("down_residual", PREFILL_M, 4096, 12_288, DOWN_M8),
    # lm_head = rmsnorm(h) @ W_vocab^T: the norm launcher, out[m, n] at m * N = 2.5e9.
    "lm_head_norm_m16384": ("rmsnorm_qkv", 16_384, VOCAB, 4096, QKV_M32),
    # The same N split-K through the residual launcher: partial offsets 2 * 12,288 * N = 3.7e9
    # (M = 12,288 keeps its 15 GB of partials, 7.5 GB of out and residual under ~30 GB).
    "lm_head_splitk_m12288": ("o_proj_residual", 12_288, VOCAB, 4096, O_PROJ_M8),
}
TOLERANCE = 1e-2  # bf16 against the unfused path (DESIGN.md)
DEVICE = "cuda"


def _inputs(op: str, m: int, n: int, k: int, gen):
    import torch

    from kernel_space._common import linear_weight, norm_weight, randn

    dev, bf16 = DEVICE, torch.bfloat16
    w = linear_weight(n, k, bf16, dev, gen)
    if op in ("rmsnorm_qkv", "rmsnorm_gate_up_silu"):
        return (randn((m, k), bf16, dev, gen), norm_weight(k, bf16, dev, gen), w)
    scale = 0.5 if op == "down_residual" else 1.0  # silu(g) * u has a smaller spread than a unit normal
    return (randn((m, k), bf16, dev, gen, scale=scale), randn((m, n), bf16, dev, gen), w)


def _launchers(op: str):
    import importlib

    module = importlib.import_module(f"kernel_space.{op}")
    return getattr(module, op), getattr(module, f"{op}_unfused")


def _rel_error(out, ref) -> float:
    """||out - ref|| / ||ref|| in fp64 sums over row chunks of 2^24 elements (an fp64 copy of a whole
    16,384 x 151,936 output would be 20 GB)."""
    import torch

    num = den = 0.0
    rows = max(1, 2**24 // out.shape[1])
    for start in range(0, out.shape[0], rows):
        o, r = out[start:start + rows].float(), ref[start:start + rows].float()
        if not torch.isfinite(o).all():
            return float("inf")  # NaN left by the poison: an element never written
        num += float(torch.linalg.vector_norm(o - r, dtype=torch.float64)) ** 2
        den += float(torch.linalg.vector_norm(r, dtype=torch.float64)) ** 2
    return (num / den) ** 0.5 if den > 0 else num**0.5


def _timed_ms(fn, repeats: int = 3) -> float:
    import torch

    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def _geometry(op: str, m: int, n: int, k: int, cfg: dict) -> dict:
    """What this checkout's geometry and check_config say of the launch (absent before the fix)."""
    import kernel_space as ks

    gated = op == "rmsnorm_gate_up_silu"
    info = {"check_config": ks.get_op(op).check(cfg, m, n, k, 2)}
    try:
        from kernel_space.geometry import LinearLaunch
    except ImportError:
        return info
    launch = LinearLaunch.of(cfg, m, n // 2 if gated else n, k, gated)
    return {**info, "max_offset": launch.max_offset(), "index_64": launch.needs_int64,
            "scratch_gb": round(launch.scratch_bytes() / 1e9, 2)}


def run_case(name: str) -> dict:
    import torch

    from kernel_space._common import poisoned_outputs

    op, m, n, k, cfg = CASES[name]
    row = {"case": name, "op": op, "M": m, "N": n, "K": k, "config": cfg, **_geometry(op, m, n, k, cfg)}
    fused, unfused = _launchers(op)
    args = _inputs(op, m, n, k, torch.Generator(device=DEVICE).manual_seed(0))
    ref = unfused(*args)
    ref = ref[0] if isinstance(ref, tuple) else ref
    torch.cuda.synchronize()
    row["unfused_ms"] = _timed_ms(lambda: unfused(*args))
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    with poisoned_outputs():
        out = fused(*args, cfg)
        torch.cuda.synchronize()  # a fault surfaces here
    row["rel_error"] = _rel_error(out, ref)
    del out
    row["fused_ms"] = _timed_ms(lambda: fused(*args, cfg))
    row["peak_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 1)
    row["status"] = "ok" if row["rel_error"] <= TOLERANCE else "wrong"
    return row


def _run_isolated(name: str, timeout: int = 600) -> dict:
    """run_case in a child process: a CUDA fault there is recorded, not fatal here."""
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, __file__, "--case", name], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"case": name, "status": "error", "error": f"timed out after {timeout} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        row = json.loads(lines[-1])
    else:
        tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-3:]
        row = {"case": name, "status": "error", "returncode": proc.returncode, "error": " | ".join(tail)}
    row["wall_s"] = round(time.perf_counter() - start, 1)
    return row


def _describe(row: dict) -> str:
    if row["status"] == "error":
        return f"{row['case']:24s} ERROR  {row['error'][-200:]}"
    return (f"{row['case']:24s} {row['status']:5s}  rel_err {row['rel_error']:.2e}  fused {row['fused_ms']:8.2f} ms"
            f"  unfused {row['unfused_ms']:7.2f} ms  peak {row['peak_gb']:5.1f} GB  index_64 {row.get('index_64')}"
            f"  check_config: {row['check_config'] or 'passes'}")


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "--case":
        print(json.dumps(run_case(argv[2])))
        return 0
    if len(argv) != 2:
        print(f"usage: python3 {argv[0]} RESULT.json", file=sys.stderr)
        return 2
    import torch
    import triton

    if not torch.cuda.is_available():
        print("repro_oob needs a CUDA GPU", file=sys.stderr)
        return 2
    rows = []
    for name in CASES:
        rows.append(_run_isolated(name))
        print(_describe(rows[-1]), flush=True)
    result = {"gpu": torch.cuda.get_device_name(), "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
              "triton": triton.__version__, "tolerance": TOLERANCE, "cases": rows}
    Path(argv[1]).parent.mkdir(parents=True, exist_ok=True)
    Path(argv[1]).write_text(json.dumps(result, indent=1) + "\n")
    return 0 if all(row["status"] == "ok" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
