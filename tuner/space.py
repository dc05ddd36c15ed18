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

Nor does it offer a config twice: the op's redundancy rule (OpSpec.redundant) keeps GROUP_M at 1 on
one row block and num_stages at 1 where a split is one K block or on the FMA path (spec.stages_matter:
nothing for Triton to pipeline, so the stages build the same PTX). A seed that is such a twin is
enqueued as the config it runs as (OpSpec.canonical).

Two search heuristics, not rules, narrow it further: the FMA path only at M <= 4 and BLOCK_M <= 8
there (it lost to tl.dot everywhere else on the H100).

Decode attention walks its own parameters in its space's order (SPLITS, BLOCK_N, pack, combine,
num_warps, num_stages, prep), offered the configs its check accepts and its redundancy rule keeps
(kernel_space.decode_attention.redundant_reason: no empty split, no combine without a split, no
stages where nothing is pipelined) at the study's batch and context.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from collections.abc import Container

from kernel_space import get_op
from kernel_space.spec import (
    DEFAULT_SMEM_LIMIT,
    UNFUSED_CONFIG,
    block_range,
    config_key,
    has_k_loop,
    max_split,
    stages_matter,
)
from tuner.candidates import valid_configs

FMA_MAX_M = 4
FMA_MAX_BLOCK_M = 8
ORDER = ("path", "BLOCK_M", "BLOCK_N", "BLOCK_K", "SPLIT_K", "split_reduce", "num_warps", "num_stages")
PARAMS = (*ORDER, "GROUP_M", "prologue")


def _params(op: str) -> tuple[str, ...]:
    """The parameters asked after impl, in order: the GEMM's PARAMS, or an attention space's keys."""
    spec = get_op(op)
    return tuple(key for key in spec.space.values if key != "impl") if spec.kind == "attention" else PARAMS


# A study's space is ~0.1-0.8 s of CPU to enumerate and ~20 MB as rows and tree (the 36 GEMM studies of
# 0.6B: 640 MB, in every worker). A worker opens one study at a time, so a few are cached, not 64.
_CACHED = 4


@functools.lru_cache(maxsize=_CACHED)
def _space(op: str, m: int, n: int, k: int, elem_bytes: int, smem_limit: int) -> tuple[tuple, ...]:
    """The valid fused configs worth offering at this shape, as tuples in _params(op) order."""
    spec = get_op(op)
    if spec.kind == "attention":
        params = _params(op)
        rows = {tuple(cfg[p] for p in params) for cfg in valid_configs(op, m, n, k, elem_bytes, smem_limit)
                if spec.redundant(cfg, m, n, k, elem_bytes) is None}
        return tuple(sorted(rows, key=str))
    rows = {tuple(cfg[p] for p in ORDER) + (cfg["GROUP_M"], cfg["prologue"])
            for cfg in _linear_candidates(spec, m, n, k)
            if spec.check(cfg, m, n, k, elem_bytes, smem_limit) is None}
    return tuple(sorted(rows, key=str))


def _linear_candidates(spec, m: int, n: int, k: int):
    """The configs of a GEMM op's grid that the search heuristics keep at this shape, less those that
    block_range, max_split and the split_reduce and prologue rules already rule out (all check's own
    rules; check still decides every one that is yielded). Walking the whole grid (345,600 fused
    configs) through check took 1.1 to 1.5 s a study on a laptop core, in every worker that opened
    the study; this walks a few thousand to a few tens of thousands."""
    values, cols = spec.space.values, spec.n_out(n)
    for path in values["path"]:
        if path == "fma" and m > FMA_MAX_M:
            continue
        ranges = {param: block_range(param, path, m, cols, k) for param in ("BLOCK_M", "BLOCK_N", "BLOCK_K")}
        sizes = {param: [v for v in values[param] if low <= v <= high] for param, (low, high) in ranges.items()}
        for bm, bn, bk in itertools.product(sizes["BLOCK_M"], sizes["BLOCK_N"], sizes["BLOCK_K"]):
            if path == "fma" and bm > FMA_MAX_BLOCK_M:
                continue
            tile = {"impl": "fused", "path": path, "BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}
            yield from _tile_candidates(spec, tile, m, k)


def _tile_candidates(spec, tile: dict, m: int, k: int):
    """_linear_candidates' configs of one tile (path and block sizes)."""
    values = spec.space.values
    splits = [s for s in values["SPLIT_K"] if s == 1 or s <= max_split(k, tile["BLOCK_K"])]
    # The op's redundancy rule (spec.redundant), applied here, before the product: one row block keeps
    # GROUP_M at 1, a split of one K block or the FMA path keeps num_stages at 1 (tests/tuner/test_space.py
    # holds that this offers exactly the grid less what check refuses and redundant names).
    groups = values["GROUP_M"] if math.ceil(m / tile["BLOCK_M"]) > 1 else (1,)
    # Also check's own rules, stated there: split_reduce only with SPLIT_K > 1, the prepass and rescan
    # prologues only for an op with a norm, rescan only with a K loop (each the other way is one config,
    # not two).
    prologues = values["prologue"] if spec.norm else tuple(p for p in values["prologue"] if p == "inline")
    for split, group, warps, prologue in itertools.product(splits, groups, values["num_warps"], prologues):
        loop = has_k_loop({**tile, "SPLIT_K": split}, k)
        if prologue == "rescan" and not loop:
            continue
        for stages in values["num_stages"] if loop and stages_matter(tile) else (1,):
            for reduce in values["split_reduce"] if split > 1 else ("kernel",):
                yield {**tile, "SPLIT_K": split, "split_reduce": reduce, "num_warps": warps, "num_stages": stages,
                       "GROUP_M": group, "prologue": prologue}


def _name(param: str, allowed: list, full: list) -> str:
    return param if allowed == full else f"{param}|{','.join(map(str, allowed))}"


def _walk(op, m, n, k, elem_bytes, smem_limit, pick) -> dict | None:
    """Choose each parameter in turn among the values that still have a valid completion; pick(name,
    choices) returns the chosen value. None if the shape admits no fused config."""
    node = _tree(op, m, n, k, elem_bytes, smem_limit)
    if not node:
        return None
    cfg = {"impl": "fused"}
    for param, full in zip(_params(op), _values(op, m, n, k, elem_bytes, smem_limit), strict=True):
        allowed = node[_CHOICES]
        cfg[param] = allowed[0] if len(full) == 1 else pick(_name(param, allowed, full), allowed)
        if cfg[param] not in node:
            return None
        node = node[cfg[param]]
    return cfg


_CHOICES = object()  # a _tree node's key for its sorted choices


@functools.lru_cache(maxsize=_CACHED)
def _tree(op: str, m: int, n: int, k: int, elem_bytes: int, smem_limit: int) -> dict:
    """_space as a prefix tree, one level per parameter in _params(op) order: a node maps each value
    with a valid completion to the node below, and _CHOICES to those values sorted as offered. A walk
    then costs a few dict lookups a parameter rather than a pass over thousands of rows."""
    root: dict = {}
    for row in _space(op, m, n, k, elem_bytes, smem_limit):
        node = root
        for value in row:
            node = node.setdefault(value, {})
    stack = [root] if root else []
    while stack:
        node = stack.pop()
        children = list(node.values())
        node[_CHOICES] = sorted(node, key=str)
        stack += [child for child in children if child]
    return root


@functools.lru_cache(maxsize=_CACHED)
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


def unseen_config(op: str, m: int, n: int, k: int, elem_bytes: int, smem_limit: int, seen: Container[str],
                  rng: random.Random, tries: int = 32) -> dict | None:
    """A fused config of the space at this shape whose config_key is not in `seen`, drawn uniformly;
    None when every one is seen. What the tuner measures in place of a repeated proposal (see
    tuner.search._explore): a few random draws, then a shuffled pass when most of the space is seen."""
    rows, params = _space(op, m, n, k, elem_bytes, smem_limit), _params(op)

    def config(row):
        return {"impl": "fused", **dict(zip(params, row, strict=True))}

    for _ in range(min(tries, len(rows))):
        cfg = config(rng.choice(rows))
        if config_key(cfg) not in seen:
            return cfg
    for row in rng.sample(rows, len(rows)):
        cfg = config(row)
        if config_key(cfg) not in seen:
            return cfg
    return None


def config_to_params(cfg: dict, op: str, m: int, n: int, k: int, elem_bytes: int = 2,
                     smem_limit: int = DEFAULT_SMEM_LIMIT) -> dict | None:
    """The trial params that make `suggest` return cfg, or its twin where cfg is redundant (for
    enqueuing: spec.canonical); None if neither is in the space offered at this shape."""
    if cfg.get("impl") == "unfused":
        return {"impl": "unfused"}
    spec = get_op(op)
    if spec.check(cfg, m, n, k, elem_bytes, smem_limit) is not None:
        return None
    cfg = spec.canonical(cfg, m, n, k)
    params = {"impl": "fused"}

    def pick(name, choices):
        params[name] = cfg.get(name.split("|")[0])
        return params[name]

    walked = _walk(op, m, n, k, elem_bytes, smem_limit, pick)
    if walked is None or any(walked[key] != cfg.get(key) for key in walked):
        return None
    return params
