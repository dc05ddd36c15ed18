"""decode_attention_prep with prep=fused (q/k RMSNorm + RoPE + the KV-cache write inside the attention
kernel) against prep=separate (qk_norm_rope_cache, then decode_attention) and the fp64 reference, under
Triton's interpreter (on a GPU when there is one): odd lengths, lengths across chunk edges, GQA groups 1,
2 and 7, head_dim 64 and 128, split and unsplit, both packs and both combines; the cache slot it writes
equals qk_norm_rope_cache's and nothing else changes; positions outside the cache write nothing; configs
and inputs it must refuse.

The slot at each sequence's position holds NaN before a run (and so do the slots past it): the fused
kernel must take the new token's key and value from the qkv row, never from that slot.

bf16 runs on the GPU only: the interpreter's tl.dot has no bf16 (see test_ops.py)."""

import re

import pytest
import torch

from kernel_space import get_op
from kernel_space._common import TOLERANCE, poisoned_outputs, rel_error
from kernel_space.attention_shape import ATTENTION_OP, encode_m
from kernel_space.decode_attention import (
    SPACE,
    SPEC,
    AttentionProblem,
    attention_plan,
    check_config,
    decode_attention,
    decode_attention_prep,
    default_configs,
    make_prep_inputs,
    redundant_reason,
    sample_configs,
)
from tests.conftest import DEVICE
from tests.kernel_space.test_decode_attention import CONFIGS as ATTENTION_CONFIGS
from tests.kernel_space.test_decode_attention import config as attention_config

# How far the key slot the fused kernel writes may differ from qk_norm_rope_cache's: both round alike
# (one helper), but their fp32 sums of squares may run in another order (tests/qwen3/test_kernels.py).
SLOT_TOL = {torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 2e-2}


def config(prep="fused", **keys) -> dict:
    """tests/kernel_space/test_decode_attention.py's config, with prep (fused by default)."""
    return {**attention_config(**keys), "prep": prep}


def inputs_for(problem: AttentionProblem, lengths, seed=0, first_row=0, rows=None) -> dict:
    """make_prep_inputs for len(lengths) sequences in cache rows first_row.. of `rows`, positions
    length - 1, every slot at or past a sequence's position NaN."""
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    whole = AttentionProblem(rows or problem.batch, problem.heads, problem.kv_heads, problem.head_dim,
                             problem.context, problem.dtype)
    inputs = make_prep_inputs(whole, DEVICE, gen)
    b = len(lengths)
    inputs["qkv"] = inputs["qkv"][:b].contiguous()
    inputs["positions"] = torch.tensor(lengths, device=DEVICE)[:, None] - 1
    for i, n in enumerate(lengths):
        inputs["k_cache"][first_row + i, n - 1:] = float("nan")
        inputs["v_cache"][first_row + i, n - 1:] = float("nan")
    return inputs


def launch(inputs: dict, cfg: dict, first_row=0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """o and the caches after decode_attention_prep with cfg on a copy of the inputs' caches, outputs poisoned."""
    i = {**inputs, "k_cache": inputs["k_cache"].clone(), "v_cache": inputs["v_cache"].clone()}
    with poisoned_outputs():
        o = decode_attention_prep(i["qkv"], i["q_norm_w"], i["k_norm_w"], i["cos"], i["sin"], i["eps"], i["k_cache"],
                                  i["v_cache"], i["positions"], i["scale"], first_row, cfg)
    return o, i["k_cache"], i["v_cache"]


def assert_same_caches(fused: tuple, separate: tuple, before: tuple, written: torch.Tensor, dtype) -> None:
    """The slots `written` ([rows, L] bool) hold what qk_norm_rope_cache wrote (v bit for bit); every other
    slot is as it was before the run, NaN included."""
    (fk, fv), (sk, sv), (bk, bv) = fused, separate, before
    tol = SLOT_TOL[dtype]
    torch.testing.assert_close(fk[written], sk[written], atol=tol, rtol=tol)
    assert torch.equal(fv[written], sv[written])
    for cache, old, other in ((fk, bk, sk), (fv, bv, sv)):
        torch.testing.assert_close(cache[~written], old[~written], atol=0, rtol=0, equal_nan=True)
        torch.testing.assert_close(other[~written], old[~written], atol=0, rtol=0, equal_nan=True)


def compare(problem: AttentionProblem, lengths, cfg: dict, seed=0, first_row=0, rows=None) -> None:
    """prep=fused against prep=separate (same config otherwise) and against the op's reference: o within
    the dtype's tolerance, the written slots as qk_norm_rope_cache writes them, nothing else touched."""
    dtype = getattr(torch, problem.dtype)
    inputs = inputs_for(problem, lengths, seed, first_row, rows)
    fused = launch(inputs, cfg, first_row)
    separate = launch(inputs, {**cfg, "prep": "separate"}, first_row)
    o = fused[0]
    assert o.shape == (len(lengths), 1, problem.heads * problem.head_dim) and o.dtype == dtype
    assert rel_error(o, separate[0]) <= TOLERANCE[dtype]
    if first_row == 0 and (rows or problem.batch) == len(lengths):  # the reference reads rows 0..B-1
        assert rel_error(o, SPEC.reference(inputs)[0]) <= TOLERANCE[dtype]
    for i in range(len(lengths)):  # every sequence on its own, not only the batch's norm
        assert rel_error(o[i], separate[0][i]) <= TOLERANCE[dtype], lengths[i]
    written = torch.zeros(inputs["k_cache"].shape[:2], dtype=torch.bool, device=DEVICE)
    for i, n in enumerate(lengths):
        written[first_row + i, n - 1] = True
    assert_same_caches(fused[1:], separate[1:], (inputs["k_cache"], inputs["v_cache"]), written, dtype)


# The attention tests' configs, each with the prep fused.
CONFIGS = {name: {**cfg, "prep": "fused"} for name, cfg in ATTENTION_CONFIGS.items()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize(("heads", "kv_heads", "head_dim"), [(2, 2, 64), (4, 2, 128), (7, 1, 64)],
                         ids=["g1", "g2-hd128", "g7"])
def test_fused_prep_equals_separate_prep_then_attention(heads, kv_heads, head_dim, name, dtype):
    """Lengths 1, 17 and 300 in one batch, in cache rows 1..3 of 4."""
    if dtype == torch.bfloat16 and DEVICE == "cpu":
        pytest.skip("the interpreter's tl.dot has no bf16: checked on the GPU")
    cfg = CONFIGS[name]
    problem = AttentionProblem(3, heads, kv_heads, head_dim, 300, str(dtype).removeprefix("torch."))
    assert check_config(cfg, problem) is None
    compare(problem, [1, 17, 300], cfg, first_row=1, rows=4)


@pytest.mark.parametrize("pack", ["group", "head"])
@pytest.mark.parametrize("combine", ["kernel", "last_program"])
def test_lengths_across_chunk_edges(pack, combine):
    """BLOCK_N 16 and 4 splits: the new slot is alone in its split (65: chunks of 32, the last split holds
    slot 64 only), first or last of a block, or in a split of several blocks; against the reference too."""
    lengths = [1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 200]
    problem = AttentionProblem(len(lengths), 4, 2, 64, 200, "float32")
    stages = 2 if pack == "group" else 1
    compare(problem, lengths, config(splits=4, block_n=16, pack=pack, combine=combine, stages=stages), seed=3)


@pytest.mark.parametrize("seed", [0, 1])
def test_prep_fused_configs_drawn_from_the_space(seed):
    problem = AttentionProblem(2, 4, 2, 64, 90, "float16")
    configs = sample_configs(problem, 4, seed=seed, prep="fused")
    assert len(configs) == 4 and configs[0] == {**attention_plan(2, 4, 2, 64, 90, 132), "prep": "fused"}
    assert configs[0]["kv"] == "early"  # 3 blocks of 32: a program a block, its K/V before the wait
    for cfg in configs:
        assert set(cfg) == set(SPACE.values) and cfg["prep"] == "fused"
        assert check_config(cfg, problem) is None and redundant_reason(cfg, problem) is None
        compare(problem, [90, 33], cfg, seed=seed)


def early(splits, block_n, pack="group", combine="last_program", warps=4) -> dict:
    """A kv=early config with prep fused: the chunk's one block before PDL's wait, the new slot from the qkv row."""
    return {**config(splits=splits, block_n=block_n, pack=pack, combine=combine, warps=warps, stages=1), "kv": "early"}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize(("heads", "kv_heads", "head_dim", "cfg"), [
    (4, 2, 64, early(4, 16)),
    (7, 1, 64, early(4, 16, combine="kernel")),
    (2, 2, 128, early(2, 32, warps=8)),
    (4, 2, 64, early(4, 16, pack="head", combine="kernel", warps=2)),
    (4, 2, 64, early(1, 64, combine="kernel")),
], ids=["g2-split4", "g7-kernel", "g1-hd128", "head", "unsplit"])
def test_kv_early_with_prep_fused(heads, kv_heads, head_dim, cfg, dtype):
    """kv=early with prep=fused: each program's block but the new slot loaded before PDL's wait, the new
    key and value from the qkv row. Lengths 1 (the new slot alone), 17 (alone in its split), one off a
    block edge and the whole cache, in cache rows 1..4 of 5; o against prep=separate and every written
    slot against qk_norm_rope_cache's."""
    if dtype == torch.bfloat16 and DEVICE == "cpu":
        pytest.skip("the interpreter's tl.dot has no bf16: checked on the GPU")
    problem = AttentionProblem(4, heads, kv_heads, head_dim, 64, str(dtype).removeprefix("torch."))
    assert check_config(cfg, problem) is None and redundant_reason(cfg, problem) is None
    compare(problem, [1, 17, cfg["BLOCK_N"] - 1, 64], cfg, first_row=1, rows=5)


def test_kv_early_with_prep_fused_at_every_edge():
    """BLOCK_N 16, 4 splits over 64 slots (one block a program): the new slot first, last or alone in its
    block, at every split; against the reference too."""
    lengths = [1, 2, 15, 16, 17, 31, 32, 33, 48, 49, 63, 64]
    problem = AttentionProblem(len(lengths), 4, 2, 64, 64, "float32")
    compare(problem, lengths, early(4, 16), seed=4)


@pytest.mark.parametrize("cfg", [early(2, 16), early(3, 16, combine="kernel"), {**early(2, 16), "num_stages": 2},
                                 early(3, 16, pack="head", combine="kernel", warps=2), early(1, 32, combine="kernel")],
                         ids=["split2", "split3-kernel", "stages2", "head", "unsplit"])
def test_kv_early_with_prep_fused_past_one_block(cfg):
    """A cache of 100 slots, more than SPLITS x BLOCK_N: each program's first block but the new slot
    before PDL's wait, the chunk's other blocks after it, the new slot from the qkv row wherever it falls
    (the first block, a later one, alone in its chunk); o and every written slot against prep=separate."""
    lengths = [1, 16, 17, 33, 49, 50, 51, 64, 65, 99, 100]
    problem = AttentionProblem(len(lengths), 4, 2, 64, 100, "float32")
    assert check_config(cfg, problem) is None and redundant_reason(cfg, problem) is None
    compare(problem, lengths, cfg, seed=5, first_row=1, rows=len(lengths) + 1)


@pytest.mark.parametrize("kv", ["loop", "early"])
@pytest.mark.parametrize("combine", ["kernel", "last_program"])
def test_positions_outside_the_cache_write_nothing(combine, kv):
    """Positions -1, 40 and 45 in a cache of 40 slots, and 35 past a RoPE table of 30 rows (inside the
    cache): no K/V is written for them (as qk_norm_rope_cache), the slots they attend are read from the
    cache, and both preps agree; the one position inside (5) is written."""
    problem = AttentionProblem(5, 4, 2, 64, 40, "float32")
    inputs = make_prep_inputs(problem, DEVICE, torch.Generator(device=DEVICE).manual_seed(6))
    inputs["positions"] = torch.tensor([[-1], [40], [45], [35], [5]], device=DEVICE)
    inputs["cos"], inputs["sin"] = inputs["cos"][:30], inputs["sin"][:30]
    cfg = {**config(splits=3, block_n=16, combine=combine), "kv": kv}  # 3 x 16 >= 40 slots: early loads early
    fused, separate = launch(inputs, cfg), launch(inputs, {**cfg, "prep": "separate"})
    assert torch.isfinite(fused[0]).all() and rel_error(fused[0], separate[0]) <= TOLERANCE[torch.float32]
    written = torch.zeros((5, 40), dtype=torch.bool, device=DEVICE)
    written[4, 5] = True
    assert_same_caches(fused[1:], separate[1:], (inputs["k_cache"], inputs["v_cache"]), written, torch.float32)
    assert not torch.equal(fused[1][4, 5], inputs["k_cache"][4, 5])


def test_the_plan_from_q_stays_separate_and_the_seeds_try_both_preps():
    """From a prepared q the plan's prep is separate; from the qkv rows at 0.6B's heads, batch 8 x 4k,
    the loop plan fuses it (decode_attention.LOOP_PREP_FUSED_*), and the seeds try it, then the other."""
    problem = AttentionProblem(8, 16, 8, 128, 4096)
    plan = attention_plan(8, 16, 8, 128, 4096, 132)
    assert plan["prep"] == "separate" and set(plan) == set(SPACE.values)
    seeds = default_configs(problem)
    assert seeds[:2] == [{**plan, "prep": "fused"}, plan]
    assert get_op(ATTENTION_OP).default_configs(encode_m(8, 4096), 16008, 128, 2)[:2] == seeds[:2]


def test_the_timed_work_starts_at_the_qkv_rows():
    """traffic counts the qkv rows in and o and the new K/V out beside the caches (every arm times the prep)."""
    p = AttentionProblem(8, 16, 8, 128, 4096)
    moved, _ = SPEC.traffic(encode_m(8, 4096), 16008, 128, 2)
    assert moved == p.kv_bytes() + 8 * 128 * 2 * ((16 + 2 * 8) + 16 + 2 * 8)


P = AttentionProblem(8, 16, 8, 128, 8192)


def test_config_checks_know_prep():
    """A config without prep (a table written before it was a key) is prep=separate; any other value
    is refused with the reason; prep is never redundant."""
    old = {k: v for k, v in config(prep="separate").items() if k != "prep"}
    assert check_config(old, P) is None and redundant_reason(old, P) is None
    assert "prep='both' is not in the search space ('separate', 'fused')" in check_config(config(prep="both"), P)
    assert check_config(config(), P) is None and redundant_reason(config(), P) is None
    assert "config lacks SPLITS" in check_config({k: v for k, v in config().items() if k != "SPLITS"}, P)


def _inputs(**change):
    problem = AttentionProblem(2, 4, 2, 16, 8, "float32")
    inputs = make_prep_inputs(problem, DEVICE, torch.Generator(device=DEVICE).manual_seed(0))
    return {**inputs, **change}


BAD_INPUTS = [
    ({"qkv": torch.zeros(2, 1, 128)}, "qkv must be 2-D"),
    ({"qkv": torch.zeros(2, 100)}, "qkv's 100 columns are not (heads + 2 * 2) * 16"),
    ({"qkv": torch.zeros(2, 64)}, "qkv's 64 columns are not (heads + 2 * 2) * 16"),
    ({"qkv": torch.zeros(2, 256, device=DEVICE)[:, ::2]}, "qkv needs a unit column stride"),  # .to() would copy
    ({"qkv": torch.zeros(2, 128, dtype=torch.float16)}, "k_cache is torch.float32 on"),
    ({"qkv": torch.zeros(2, 112)}, "3 query heads do not split"),
    ({"q_norm_w": torch.ones(8)}, "q_norm_w must be [16]"),
    ({"k_norm_w": torch.ones(1, 16)}, "k_norm_w must be 1-D"),
    ({"cos": torch.ones(8, 32)}, "cos must be [positions >= 1, 16]"),
    ({"sin": torch.ones(7, 16)}, "differ in shape or strides"),
    ({"eps": -1e-6}, "eps must be a finite number >= 0"),
    ({"positions": torch.zeros(3, dtype=torch.long)}, "of 2 elements"),
    ({"first_row": 1}, "first_row 1 + batch 2"),
    ({"scale": 0.0}, "scale must be a positive number"),
    ({"config": {"impl": "unfused"}}, "call decode_attention_unfused"),
    ({"config": config(prep="both")}, "prep='both' is not in the search space"),
]


@pytest.mark.parametrize(("change", "message"), BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_launcher_refuses_bad_inputs(change, message):
    i = _inputs(**{k: (v.to(DEVICE) if isinstance(v, torch.Tensor) else v) for k, v in change.items()})
    with pytest.raises(ValueError, match=re.escape(message)):
        decode_attention_prep(i["qkv"], i["q_norm_w"], i["k_norm_w"], i["cos"], i["sin"], i["eps"], i["k_cache"],
                              i["v_cache"], i["positions"], i["scale"], i.get("first_row", 0), i.get("config"))


def test_decode_attention_refuses_prep_fused():
    """decode_attention takes a prepared q: a prep=fused config there is a caller's mix-up, said so."""
    problem = AttentionProblem(2, 4, 2, 16, 8, "float32")
    q = torch.zeros(2, 1, 4, 16, device=DEVICE)
    cache = torch.zeros(2, 8, 2, 16, device=DEVICE)
    with pytest.raises(ValueError, match="prep=fused norms and rotates q and k itself: call decode_attention_prep"):
        decode_attention(q, cache, cache.clone(), torch.zeros(2, dtype=torch.long, device=DEVICE), 0.25, 0,
                         config(block_n=16, stages=1))
    assert check_config(config(block_n=16, stages=1), problem) is None
