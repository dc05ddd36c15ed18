"""Which configs to try first: the valid part of an op's space at a shape, and sane defaults."""

from __future__ import annotations

import functools
import math
import random

from kernel_space import get_op
from kernel_space.spec import DEFAULT_SMEM_LIMIT, WGMMA_ROWS, block_range, max_split


def programs(cfg: dict, m: int, n_out: int) -> int:
    """How many programs the fused kernel launches for this config."""
    return math.ceil(m / cfg["BLOCK_M"]) * math.ceil(n_out / cfg["BLOCK_N"]) * cfg["SPLIT_K"]


@functools.lru_cache(maxsize=256)
def _valid(op: str, m: int, n: int, k: int, elem_bytes: int, smem_limit: int) -> tuple[tuple, ...]:
    spec = get_op(op)
    out = []
    for cfg in spec.space.grid():
        if cfg["impl"] != "fused":
            continue
        if spec.check(cfg, m, n, k, elem_bytes, smem_limit) is None:
            out.append(tuple(cfg.items()))
    return tuple(out)


def n_out(op: str, n: int) -> int:
    """Output columns: the gated op writes half of its weight's rows."""
    return get_op(op).n_out(n)


def valid_configs(op, m, n, k, elem_bytes, smem_limit=DEFAULT_SMEM_LIMIT) -> list[dict]:
    """Every fused config of the op's space that passes check_config at this shape."""
    return [dict(c) for c in _valid(op, m, n, k, elem_bytes, smem_limit)]


def default_configs(op, m, n, k, elem_bytes, sm_count=132, smem_limit=DEFAULT_SMEM_LIMIT) -> list[dict]:
    """A few hand-reasoned starting points, each valid at this shape.

    Decode streams the weight: at M = 1 the FMA path wastes no rows of a padded tensor-core tile
    (measured on the H100: best for the norm ops at Qwen3-8B, M = 1); tl.dot with split-K won for
    o_proj and down. SPLIT_K is raised until >= 2 programs land on every SM. Larger M gets the
    usual tensor-core tiles. Decode attention starts from its default plan and two variants of it
    (kernel_space.decode_attention.default_configs).
    """
    spec = get_op(op)
    if spec.kind == "attention":
        return spec.default_configs(m, n, k, elem_bytes, sm_count, smem_limit)
    cols = spec.n_out(n)
    found = []
    candidates = _default_candidates(m)
    if spec.norm:  # the same tensor-core tiles with the norm in a pre-pass: a plain GEMM loop
        candidates += [{**c, "prologue": "prepass"} for c in candidates if c["path"] == "dot"]
    # Weight streaming wants >= 2 programs per SM; at large M the tiles alone fill the GPU.
    target = 2 * sm_count if m <= 64 else sm_count
    for cfg in (_fit(c, m, cols, k) for c in candidates):
        c = dict(cfg)
        for split in (1, 2, 4, 8, 16):
            if split > max_split(k, cfg["BLOCK_K"]):
                break  # no more K blocks to split: keep the last valid split
            c = {**cfg, "SPLIT_K": split, "split_reduce": "last_program" if split > 1 else "kernel"}
            if programs(c, m, cols) >= target:
                break
        c = spec.canonical(c, m, n, k)  # GROUP_M 1 on one row block, num_stages 1 on one K block a split
        # The same inline tile with its sum of squares after the loop (where it has a loop): up to 1.9x
        # faster than inline on a folded gain at 1.7B and 8B norm sites (H100), and the one of the two that
        # runs on a warpgroup MMA tile (spec.inline_ring_short).
        twins = [c, {**c, "prologue": "rescan"}] if spec.norm and c["prologue"] == "inline" else [c]
        found += [t for t in twins if spec.check(t, m, n, k, elem_bytes, smem_limit) is None]
    return found


def _fit(cfg: dict, m: int, cols: int, k: int) -> dict:
    """Shrink a default's blocks to a small shape (the tiny preset, odd test sizes)."""
    return {**cfg, **{param: min(cfg[param], block_range(param, cfg["path"], m, cols, k)[1])
                      for param in ("BLOCK_M", "BLOCK_N", "BLOCK_K")}}


def _default_candidates(m: int) -> list[dict]:
    base = dict(impl="fused", GROUP_M=1, SPLIT_K=1, split_reduce="kernel", prologue="inline")
    bm = 1 << max(0, (m - 1).bit_length())
    out = []
    if m == 1:
        out += [
            {**base, "path": "fma", "BLOCK_M": 1, "BLOCK_N": 8, "BLOCK_K": 256, "num_warps": 4, "num_stages": 4},
            {**base, "path": "fma", "BLOCK_M": 1, "BLOCK_N": 16, "BLOCK_K": 512, "num_warps": 4, "num_stages": 3},
        ]
    if m <= 64:
        out += [
            {**base, "path": "dot", "BLOCK_M": 16, "BLOCK_N": 64, "BLOCK_K": 128, "num_warps": 4, "num_stages": 4},
            {**base, "path": "dot", "BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 128, "num_warps": 2, "num_stages": 5},
        ]
    if 16 < m < WGMMA_ROWS:  # one warpgroup MMA tile: the best at Qwen3-8B M = 32 for qkv and gate_up (H100)
        out.append({**base, "path": "dot", "BLOCK_M": WGMMA_ROWS, "BLOCK_N": 32, "BLOCK_K": 128, "num_warps": 4,
                    "num_stages": 4})
    if m > 16:
        out += [
            {**base, "path": "dot", "BLOCK_M": min(bm, 128), "BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 8,
             "num_stages": 3, "GROUP_M": 8},
            {**base, "path": "dot", "BLOCK_M": min(bm, 64), "BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 4,
             "num_stages": 4, "GROUP_M": 8},
        ]
    return out


def sample_configs(op, m, n, k, elem_bytes, count, seed=0, sm_count=132, smem_limit=DEFAULT_SMEM_LIMIT):
    """`count` distinct valid configs, the defaults first, the rest drawn at random with a preference
    for grids that fill the GPU (between 1x and 8x as many programs as SMs)."""
    cols = n_out(op, n)
    rng = random.Random(seed)
    pool = valid_configs(op, m, n, k, elem_bytes, smem_limit)
    filling = [c for c in pool if sm_count <= programs(c, m, cols) <= 8 * sm_count]
    chosen, seen = [], set()
    for c in default_configs(op, m, n, k, elem_bytes, sm_count, smem_limit):
        key = tuple(sorted(c.items()))
        if key not in seen:
            seen.add(key)
            chosen.append(c)
    for source in (filling, pool):
        order = list(range(len(source)))
        rng.shuffle(order)
        for i in order:
            if len(chosen) >= count:
                return chosen
            key = tuple(sorted(source[i].items()))
            if key not in seen:
                seen.add(key)
                chosen.append(source[i])
    return chosen
