"""The search space as Optuna sees it: define-by-run, and never a config that check_config refuses.

Parameters are asked in a fixed order (impl, path, BLOCK_M, BLOCK_N, BLOCK_K, SPLIT_K, split_reduce,
num_warps, num_stages, GROUP_M, prologue), and each is offered only the values that still have a
valid completion given the ones chosen before: BLOCK_K before SPLIT_K, so that SPLIT_K is only ever
a split that leaves no split empty; the block sizes before num_warps and num_stages, so that the FMA
register budget and the shared-memory estimate hold. The valid configs come from the op's own
check (kernel_space.spec, the one place the rules are stated), enumerated once per shape.

Optuna needs one set of choices per parameter name, so a parameter whose choices were narrowed is
asked under a name that carries them ("SPLIT_K|1,2,4"); a parameter that keeps all of its values
at this shape keeps its plain name. On the committed 0.6B tune (before this), 448 of 899 trials were
configs the check refused: TPE spent half of its asks on them and learned them as failures.

Two search heuristics, not rules, narrow it further: the FMA path only at M <= 4 and BLOCK_M <= 8
there (it lost to tl.dot everywhere else on the H100), and GROUP_M only with several row blocks.

Decode attention walks its own parameters in its space's order (SPLITS, BLOCK_N, pack, combine,
num_warps, num_stages, prep), offered the configs its check accepts and its redundancy rule keeps
(kernel_space.decode_attention.redundant_reason: no empty split, no combine without a split, no
stages where nothing is pipelined) at the study's batch and context.
"""

from __future__ import annotations

import functools
import math

from kernel_space import get_op
from kernel_space.spec import DEFAULT_SMEM_LIMIT, UNFUSED_CONFIG
from tuner.candidates import valid_configs

FMA_MAX_M = 4
FMA_MAX_BLOCK_M = 8
ORDER = ("path", "BLOCK_M", "BLOCK_N", "BLOCK_K", "SPLIT_K", "split_reduce", "num_warps", "num_stages")
PARAMS = (*ORDER, "GROUP_M", "prologue")


def _params(op: str) -> tuple[str, ...]:
    """The parameters asked after impl, in order: the GEMM's PARAMS, or an attention space's keys."""
    spec = get_op(op)
    return tuple(key for key in spec.space.values if key != "impl") if spec.kind == "attention" else PARAMS


@functools.lru_cache(maxsize=64)
def _space(op: str, m: int, n: int, k: int, elem_bytes: int, smem_limit: int) -> tuple[tuple, ...]:
    """The valid fused configs worth offering at this shape, as tuples in _params(op) order."""
    spec = get_op(op)
    if spec.kind == "attention":
        params = _params(op)
        rows = {tuple(cfg[p] for p in params) for cfg in valid_configs(op, m, n, k, elem_bytes, smem_limit)
                if spec.redundant(cfg, m, n, k, elem_bytes) is None}
        return tuple(sorted(rows, key=str))
    out = set()
    for cfg in valid_configs(op, m, n, k, elem_bytes, smem_limit):
        if cfg["path"] == "fma" and (m > FMA_MAX_M or cfg["BLOCK_M"] > FMA_MAX_BLOCK_M):
            continue
        if math.ceil(m / cfg["BLOCK_M"]) == 1 and cfg["GROUP_M"] != 1:
            continue  # one row block: grouped ordering changes nothing
        out.add(tuple(cfg[p] for p in ORDER) + (cfg["GROUP_M"], cfg["prologue"]))
    return tuple(sorted(out, key=str))


def _name(param: str, allowed: list, full: list) -> str:
    return param if allowed == full else f"{param}|{','.join(map(str, allowed))}"


def _walk(op, m, n, k, elem_bytes, smem_limit, pick) -> dict | None:
    """Choose each parameter in turn among the values that still have a valid completion; pick(name,
    choices) returns the chosen value. None if the shape admits no fused config."""
    rows = _space(op, m, n, k, elem_bytes, smem_limit)
    if not rows:
        return None
    cfg = {"impl": "fused"}
    for i, (param, full) in enumerate(zip(_params(op), _values(op, m, n, k, elem_bytes, smem_limit), strict=True)):
        allowed = sorted({r[i] for r in rows}, key=str)
        cfg[param] = allowed[0] if len(full) == 1 else pick(_name(param, allowed, full), allowed)
        if cfg[param] not in allowed:
            return None
        rows = [r for r in rows if r[i] == cfg[param]]
    return cfg


@functools.lru_cache(maxsize=64)
def _values(op: str, m: int, n: int, k: int, elem_bytes: int, smem_limit: int) -> tuple[list, ...]:
    """Every value each parameter takes in the space at this shape (its plain-name choices)."""
    rows = _space(op, m, n, k, elem_bytes, smem_limit)
    return tuple(sorted({r[i] for r in rows}, key=str) for i in range(len(_params(op))))


def suggest(trial, op: str, m: int, n: int, k: int, elem_bytes: int = 2,
            smem_limit: int = DEFAULT_SMEM_LIMIT) -> dict:
    """Ask the trial for a config of `op` at (m, n, k): the unfused arm or a fused config that passes
    the op's check at this shape."""
    if trial.suggest_categorical("impl", ("fused", "unfused")) == "unfused":
        return dict(UNFUSED_CONFIG)
    cfg = _walk(op, m, n, k, elem_bytes, smem_limit, lambda name, choices: trial.suggest_categorical(name, choices))
    if cfg is None:  # no fused config fits this shape: only the baseline can run
        return dict(UNFUSED_CONFIG)
    return cfg


def config_to_params(cfg: dict, op: str, m: int, n: int, k: int, elem_bytes: int = 2,
                     smem_limit: int = DEFAULT_SMEM_LIMIT) -> dict | None:
    """The trial params that make `suggest` return cfg (for enqueuing); None if cfg is not in the
    space offered at this shape."""
    if cfg.get("impl") == "unfused":
        return {"impl": "unfused"}
    if get_op(op).check(cfg, m, n, k, elem_bytes, smem_limit) is not None:
        return None
    params = {"impl": "fused"}

    def pick(name, choices):
        params[name] = cfg.get(name.split("|")[0])
        return params[name]

    walked = _walk(op, m, n, k, elem_bytes, smem_limit, pick)
    if walked is None or any(walked[key] != cfg.get(key) for key in walked):
        return None
    return params
