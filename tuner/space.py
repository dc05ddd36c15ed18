"""The search space as Optuna sees it: define-by-run, pruned by the shape before anything is sampled.

Block choices that cannot fit the shape (tl.dot's 16-row minimum, tiles larger than the padded
problem) are never offered, and parameters that only matter on one branch are asked only there
(split_reduce only with SPLIT_K > 1, prologue only for the norm ops, BLOCK_M/BLOCK_N per path, since
the two paths allow different sizes). On the first 0.6B tune with the flat space, 40% of the trials
were configs check_config refused.
"""

from __future__ import annotations

import math

from kernel_space import get_op
from kernel_space.spec import UNFUSED_CONFIG, block_range, next_pow2

# The FMA path (broadcast-multiply and tl.sum) pays BLOCK_M x BLOCK_N x BLOCK_K registers: on the H100
# it won only at M <= 2, and with BLOCK_M >= 4 it ran 3x to 50x slower than tl.dot (bench_ops, 8B).
FMA_MAX_M = 4


def choices(op: str, m: int, n: int, k: int) -> dict[str, tuple]:
    """Per parameter name, the values worth offering at this shape."""
    spec = get_op(op)
    space = spec.space.values
    cols = spec.n_out(n)

    def fitting(param, path, cap=None):
        low, high = block_range(param, path, m, cols, k)
        return tuple(v for v in space[param] if low <= v <= min(high, cap or high))

    out = {
        "impl": space["impl"],
        "path": space["path"],
        "BLOCK_M_dot": fitting("BLOCK_M", "dot"),
        # The FMA path holds BLOCK_M x BLOCK_N x BLOCK_K products in registers: past 8 rows it lost
        # to tl.dot everywhere on the H100 (a search heuristic, not a rule: check_config allows it).
        "BLOCK_M_fma": fitting("BLOCK_M", "fma", cap=min(8, next_pow2(m))),
        "BLOCK_N_dot": fitting("BLOCK_N", "dot"),
        "BLOCK_N_fma": fitting("BLOCK_N", "fma"),
        "BLOCK_K": fitting("BLOCK_K", "dot"),
        "SPLIT_K": space["SPLIT_K"],
        "GROUP_M": space["GROUP_M"],
        "num_warps": space["num_warps"],
        "num_stages": space["num_stages"],
        "split_reduce": space["split_reduce"],
    }
    if spec.norm:
        out["prologue"] = space["prologue"]
    if m > FMA_MAX_M:
        out["path"] = ("dot",)
    return out


def suggest(trial, op: str, m: int, n: int, k: int) -> dict:
    """Ask the trial for a config of `op` at (m, n, k); returns the config dict."""
    c = choices(op, m, n, k)
    if trial.suggest_categorical("impl", c["impl"]) == "unfused":
        return dict(UNFUSED_CONFIG)
    path = trial.suggest_categorical("path", c["path"])
    bm = trial.suggest_categorical(f"BLOCK_M_{path}", c[f"BLOCK_M_{path}"])
    cfg = {
        "impl": "fused",
        "path": path,
        "BLOCK_M": bm,
        "BLOCK_N": trial.suggest_categorical(f"BLOCK_N_{path}", c[f"BLOCK_N_{path}"]),
        "BLOCK_K": trial.suggest_categorical("BLOCK_K", c["BLOCK_K"]),
        "SPLIT_K": trial.suggest_categorical("SPLIT_K", c["SPLIT_K"]),
        "num_warps": trial.suggest_categorical("num_warps", c["num_warps"]),
        "num_stages": trial.suggest_categorical("num_stages", c["num_stages"]),
    }
    # Grouped ordering only changes anything with several row blocks.
    cfg["GROUP_M"] = trial.suggest_categorical("GROUP_M", c["GROUP_M"]) if math.ceil(m / bm) > 1 else 1
    cfg["split_reduce"] = trial.suggest_categorical("split_reduce", c["split_reduce"]) \
        if cfg["SPLIT_K"] > 1 else "kernel"
    cfg["prologue"] = trial.suggest_categorical("prologue", c["prologue"]) if "prologue" in c else "inline"
    return cfg


def config_to_params(cfg: dict, op: str, m: int, n: int, k: int) -> dict | None:
    """The trial params that make `suggest` return cfg (for enqueuing); None if cfg is outside the
    pruned space at this shape."""
    c = choices(op, m, n, k)
    if cfg.get("impl") == "unfused":
        return {"impl": "unfused"}
    path = cfg["path"]
    params = {"impl": "fused", "path": path, f"BLOCK_M_{path}": cfg["BLOCK_M"], f"BLOCK_N_{path}": cfg["BLOCK_N"],
              "BLOCK_K": cfg["BLOCK_K"], "SPLIT_K": cfg["SPLIT_K"], "num_warps": cfg["num_warps"],
              "num_stages": cfg["num_stages"]}
    if math.ceil(m / cfg["BLOCK_M"]) > 1:
        params["GROUP_M"] = cfg["GROUP_M"]
    if cfg["SPLIT_K"] > 1:
        params["split_reduce"] = cfg["split_reduce"]
    if "prologue" in c:
        params["prologue"] = cfg.get("prologue", "inline")
    if any(value not in c[key] for key, value in params.items()):
        return None
    return params
