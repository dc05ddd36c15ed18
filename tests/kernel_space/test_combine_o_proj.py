"""Decode attention's combine folded into o_proj (kernel_space.combine_o_proj) against the attention's own
combine followed by o_proj's fp64 reference: under the interpreter in fp32 and fp16 (the interpreter's
bf16 tl.dot is not the GPU's), on a GPU in bf16 too, with PDL on Hopper."""

import pytest
import torch

import kernel_space.decode_attention as da
from kernel_space._common import stream_values, to_fixed
from kernel_space.combine_o_proj import o_proj_residual_combined
from kernel_space.o_proj_residual import o_proj_residual_reference
from tests.conftest import DEVICE

DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if DEVICE == "cuda" else [])

ARGS = ("qkv", "q_norm_w", "k_norm_w", "cos", "sin", "eps", "k_cache", "v_cache", "positions", "scale")


def _cell(heads, kv, hd, context, dtype, length=None, seed=0):
    problem = da.AttentionProblem(1, heads, kv, hd, context, str(dtype).removeprefix("torch."))
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    inputs = da.make_prep_inputs(problem, DEVICE, gen, None if length is None else [length])
    return problem, [inputs[name] for name in ARGS]


def _config(problem, splits, block_n, prep="fused", combine="last_program"):
    plan = da.default_plan(problem, torch.device(DEVICE), from_qkv=True)
    return {**plan, "SPLITS": splits, "BLOCK_N": block_n, "prep": prep, "combine": combine,
            "kv": "early" if prep == "fused" else "loop"}


def _residual(n, dtype, stream, gen):
    res = torch.randn((1, n), generator=gen, device=DEVICE).to(dtype)
    if stream == "fixed":
        return res, to_fixed(res.float())
    if stream == "fp32":
        return res, res.float()
    return res, res


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stream", ["model", "fp32", "fixed"])
@pytest.mark.parametrize("heads, kv, hd, context, splits, block_n, n", [
    (4, 2, 32, 100, 4, 16, 48),    # GQA 2, N under one tile
    (8, 8, 16, 77, 3, 16, 130),    # no GQA, three splits, N past two tiles
    (7, 1, 16, 300, 12, 16, 64),   # GQA 7, an odd head count
    (2, 1, 64, 300, 6, 32, 200),   # head_dim 64
])
def test_the_fold_matches_the_combine_then_o_proj(heads, kv, hd, context, splits, block_n, n, stream, dtype):
    problem, args = _cell(heads, kv, hd, context, dtype)
    cfg = _config(problem, splits, block_n)
    gen = torch.Generator(device=DEVICE).manual_seed(5)
    w = (torch.randn((n, heads * hd), generator=gen, device=DEVICE) / (heads * hd) ** 0.5).to(dtype)
    res, stream_in = _residual(n, dtype, stream, gen)
    o = da.decode_attention_prep(*args, 0, cfg)
    parts = da.decode_attention_prep(*args, 0, cfg, partials=True)
    assert isinstance(parts, da.SplitPartials) and parts.splits == splits
    want = o_proj_residual_reference(o.view(1, -1), res, w)
    got = o_proj_residual_combined(parts, stream_in.clone(), w, accumulate=stream != "model")
    got = stream_values(got, torch.float64) if stream == "fixed" else got.double()
    assert got.shape == (1, n)
    tol = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
    assert ((got - want).abs().max() / want.abs().max()).item() < tol


@pytest.mark.parametrize("length", [1, 16, 17, 33, 64])
def test_every_split_edge_and_a_sequence_of_one_split(length):
    """Lengths on and across the chunk edges (16-slot blocks, 4 splits of a 64-slot cache): a sequence of
    at most one block used one split, so o is written by the attention and the fold reads it."""
    problem, args = _cell(4, 2, 16, 64, torch.float32, length=length)
    cfg = _config(problem, 4, 16)
    w = torch.randn((24, 64), generator=torch.Generator().manual_seed(1)).to(DEVICE) / 8
    res = torch.randn((1, 24), generator=torch.Generator().manual_seed(2)).to(DEVICE)
    want = o_proj_residual_reference(da.decode_attention_prep(*args, 0, cfg).view(1, -1), res, w)
    got = o_proj_residual_combined(da.decode_attention_prep(*args, 0, cfg, partials=True), res, w)
    assert ((got.double() - want).abs().max() / want.abs().max()).item() < 1e-5


def test_the_separate_prep_leaves_its_partials_too():
    problem, args = _cell(4, 2, 32, 100, torch.float32)
    cfg = _config(problem, 4, 16, prep="separate", combine="kernel")
    w = torch.randn((32, 128), generator=torch.Generator().manual_seed(3)).to(DEVICE) / 12
    res = torch.randn((1, 32), generator=torch.Generator().manual_seed(4)).to(DEVICE)
    want = o_proj_residual_reference(da.decode_attention_prep(*args, 0, cfg).view(1, -1), res, w)
    parts = da.decode_attention_prep(*args, 0, cfg, partials=True)
    assert isinstance(parts, da.SplitPartials)
    got = o_proj_residual_combined(parts, res, w)
    assert ((got.double() - want).abs().max() / want.abs().max()).item() < 1e-5


def test_one_split_or_too_many_returns_o():
    problem, args = _cell(4, 2, 16, 64, torch.float32)
    assert isinstance(da.decode_attention_prep(*args, 0, _config(problem, 1, 16), partials=True), torch.Tensor)
    many = da.AttentionProblem(1, 4, 2, 16, 4096, "float32")
    assert da.leaves_partials({"SPLITS": 64}, many) and not da.leaves_partials({"SPLITS": 96}, many)
    assert not da.leaves_partials({"SPLITS": 4}, da.AttentionProblem(2, 4, 2, 16, 64, "float32"))


def test_partials_are_for_batch_one_and_the_fold_checks_its_inputs():
    problem = da.AttentionProblem(2, 4, 2, 16, 64, "float32")
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    inputs = da.make_prep_inputs(problem, DEVICE, gen)
    args = [inputs[name] for name in ARGS]
    with pytest.raises(ValueError, match="batch 1 only, got batch 2"):
        da.decode_attention_prep(*args, 0, _config(problem, 4, 16), partials=True)
    part = torch.zeros((1, 4, 4, 16))
    parts = da.SplitPartials(torch.zeros((1, 1, 64)), part, torch.zeros((1, 4, 4, 2)), torch.zeros(1, dtype=torch.long),
                             4, 16, 64)
    w, res = torch.zeros((8, 64)), torch.zeros((1, 8))
    with pytest.raises(ValueError, match="SplitPartials, got Tensor"):
        o_proj_residual_combined(part, res, w)
    with pytest.raises(ValueError, match="w has 48 columns, expected 64"):
        o_proj_residual_combined(parts, res, torch.zeros((8, 48)))
    with pytest.raises(ValueError, match="residual has 2 rows, expected 1"):
        o_proj_residual_combined(parts, torch.zeros((2, 8)), w)
    with pytest.raises(ValueError, match="fp32 or fixed-point"):
        o_proj_residual_combined(parts, torch.zeros((1, 8), dtype=torch.float16), w, accumulate=True)
    with pytest.raises(ValueError, match=r"parts.part must be \[1, heads, 4, head_dim\]"):
        o_proj_residual_combined(parts._replace(part=torch.zeros((1, 4, 3, 16))), res, w)
    with pytest.raises(ValueError, match="head_dim must be a power of two, got 24"):
        o_proj_residual_combined(parts._replace(part=torch.zeros((1, 4, 4, 24))), res, torch.zeros((8, 96)))
