"""The ops on a residual stream wider than the 16-bit weights, fp32 or fixed point (int64 in units of
2^-24; qwen3.model.STREAM_ENV): o_proj and down add into it in place (launch_fused_linear's accumulate:
each split-K program adds its product with an atomic), the norm ops read it and write their output in
the weight's dtype. Against the fp64 references,
through Triton's interpreter on the CPU (fp16: the interpreter's bf16 tl.dot is wrong), or on the GPU."""

import pytest
import torch

import kernel_space as ks
from kernel_space import _gemm
from kernel_space._common import (
    FIXED_MAX,
    FIXED_NAN,
    FIXED_NAN_AT,
    TOLERANCE,
    add_fixed_,
    check_norm_op,
    rel_error,
    stream_values,
    to_fixed,
)
from kernel_space.down_residual import down_residual, down_residual_unfused
from kernel_space.o_proj_residual import o_proj_residual, o_proj_residual_unfused
from tests.conftest import DEVICE
from tests.kernel_space.test_ops import CONFIGS, SHAPES, _cfg_id

HALF = torch.float16
RESIDUAL_SITES = {"o_proj_residual": (o_proj_residual, o_proj_residual_unfused),
                  "down_residual": (down_residual, down_residual_unfused)}
INLINE = [c for c in CONFIGS if c["prologue"] == "inline"]
WIDE = {"fp32": lambda t: t.float(), "fixed": to_fixed}


def _inputs(op: str, m: int, seed: int = 0) -> dict:
    n, k = SHAPES[op]
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    return ks.get_op(op).make_inputs(m, n, k, HALF, DEVICE, gen)


@pytest.mark.parametrize("cfg", INLINE, ids=_cfg_id)
@pytest.mark.parametrize("op", sorted(RESIDUAL_SITES))
@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("wide", sorted(WIDE))
def test_residual_sites_add_into_a_wide_stream_in_place(op, cfg, m, wide):
    """Splits 1 (read, add, write), 2 and 4 (atomics), one K block and a loop, fma and dot, at odd N and K."""
    fused, unfused = RESIDUAL_SITES[op]
    i = _inputs(op, m)
    start = WIDE[wide](i["residual"] * 3.7)  # values no 16-bit stream holds exactly
    want = ks.get_op(op).reference({**i, "residual": start})[0]
    for fn, args in ((fused, (cfg,)), (unfused, ())):
        stream = start.clone()
        out = fn(i["x"], stream, i["w"], *args, accumulate=True)
        assert out is stream and out.dtype == start.dtype
        assert rel_error(stream_values(out), want) < TOLERANCE[HALF], fn.__name__


@pytest.mark.parametrize("op", ["rmsnorm_qkv", "rmsnorm_gate_up_silu", "lm_head"])
@pytest.mark.parametrize("wide", sorted(WIDE))
def test_norm_ops_read_a_wide_stream(op, wide):
    """Every norm op config (inline, rescan, prepass; fma and dot; split and not) with h an fp32 or
    fixed-point stream and 16-bit weights: the output in the weight's dtype, as close to the reference
    as with h in that dtype."""
    spec = ks.get_op(op)
    i = _inputs(op, 3)
    i32 = {**i, "h": WIDE[wide](i["h"] * 1.5)}  # values no 16-bit stream holds exactly
    want = spec.reference(i32)[0]
    configs = [c for c in CONFIGS if spec.check(c, 3, *SHAPES[op], 2) is None]
    assert {c["prologue"] for c in configs} == {"inline", "rescan", "prepass"}
    for cfg in configs:
        out = spec.fused(i32, cfg)[0]
        assert out.dtype == HALF and rel_error(out, want) < TOLERANCE[HALF], _cfg_id(cfg)
    out = spec.unfused(i32)[0]
    assert out.dtype == HALF and rel_error(out, want) < TOLERANCE[HALF]


def test_lm_head_argmax_reads_a_wide_stream():
    from kernel_space.lm_head import lm_head_argmax

    i = _inputs("lm_head", 4)
    h32 = i["h"].float() * 1.5
    logits = ks.get_op("lm_head").reference({**i, "h": h32})[0]
    cfg = INLINE[0]
    got = lm_head_argmax(h32, i["norm_w"], i["w"], cfg)
    # The argmax of the logits as the op rounds them (ties after rounding go to the first column).
    assert torch.equal(got, ks.get_op("lm_head").fused({**i, "h": h32}, cfg)[0].argmax(-1))
    assert (logits.gather(1, got[:, None]) >= logits.max(-1, keepdim=True).values - 1e-2).all()


def test_accumulate_refuses_what_it_cannot_add_in_place():
    i = _inputs("o_proj_residual", 2)
    x, w, res = i["x"], i["w"], i["residual"]
    cfg = INLINE[1]
    with pytest.raises(ValueError, match=r"fp32 or fixed-point \(int64\) residual stream"):
        o_proj_residual(x, res, w, cfg, accumulate=True)  # a 16-bit residual
    with pytest.raises(ValueError, match=r"fp32 or fixed-point \(int64\) residual stream"):
        _gemm.launch_fused_linear(x, w, cfg, accumulate=True)  # no stream at all
    with pytest.raises(ValueError, match="residual has dtype torch.int32; expected one of"):
        o_proj_residual(x, res.int(), w, cfg, accumulate=True)  # int32 is not the fixed-point stream
    with pytest.raises(ValueError, match="no norm"):
        _gemm.launch_fused_linear(x, w, cfg, norm=True, res_out=res.float(), accumulate=True)
    with pytest.raises(ValueError, match="rows"):
        o_proj_residual(x, res.float()[:1], w, cfg, accumulate=True)
    with pytest.raises(ValueError, match=r"\[M, N\]"):
        _gemm.launch_fused_linear(x, w, cfg, res_out=res.float().t().contiguous().t(), accumulate=True)


def test_norm_op_inputs_take_a_wide_stream_and_nothing_else():
    w = torch.zeros(4, 8, dtype=HALF)
    check_norm_op(torch.zeros(2, 8), None, w, 1e-6)  # fp32 h under fp16 weights: the stream
    check_norm_op(torch.zeros(2, 8, dtype=torch.int64), None, w, 1e-6)  # a fixed-point stream
    with pytest.raises(ValueError, match="h has dtype torch.int32; expected one of"):
        check_norm_op(torch.zeros(2, 8, dtype=torch.int32), None, w, 1e-6)
    with pytest.raises(ValueError, match="h has dtype torch.bfloat16, but the weight has torch.float16"):
        check_norm_op(torch.zeros(2, 8, dtype=torch.bfloat16), None, w, 1e-6)
    with pytest.raises(ValueError, match="h has dtype torch.float16, but the weight has torch.float32"):
        check_norm_op(torch.zeros(2, 8, dtype=HALF), None, w.float(), 1e-6)
    with pytest.raises(ValueError, match="norm_w has dtype"):
        check_norm_op(torch.zeros(2, 8), torch.ones(8), w, 1e-6)  # the gain is in the weight's dtype


def test_the_fixed_point_stream_spells_nan_and_overflow():
    """Not finite, or not under FIXED_MAX: FIXED_NAN, which reads back as NaN, and stays NaN when more is
    added; a finite value round-trips to 2^-24."""
    t = torch.tensor([1.5, -2.0**-25 * 3, float("nan"), float("inf"), -float("inf"), FIXED_MAX, -FIXED_MAX * 0.99])
    fixed = to_fixed(t)
    assert fixed.tolist()[:2] == [3 * 2**23, -2] and fixed[2:5].eq(FIXED_NAN).all() and fixed[5] == FIXED_NAN
    back = stream_values(fixed)
    assert back[:2].tolist() == [1.5, -2.0**-23] and back[2:6].isnan().all() and back[6] == t[6]
    edges = torch.tensor([FIXED_NAN_AT - 1, -FIXED_NAN_AT, -(2**63)])
    assert stream_values(edges).isnan().tolist() == [False, True, True]
    stream = to_fixed(torch.tensor([1.0, 2.0, float("nan")]))
    add_fixed_(stream, torch.tensor([float("nan"), 0.25, -3.0]))
    assert stream_values(stream, torch.float64)[1] == 2.25 and stream_values(stream)[[0, 2]].isnan().all()
    for _ in range(100):  # a stream NaN for many layers: set again, never summed past int64
        add_fixed_(stream, torch.tensor([float("nan"), 0.0, FIXED_MAX * 0.9]))
    assert stream[0] == FIXED_NAN and stream_values(stream)[2].isnan()


@pytest.mark.parametrize("cfg", INLINE, ids=_cfg_id)
@pytest.mark.parametrize("dtype", [HALF, torch.float32], ids=["fp16", "fp32"])
def test_a_residual_site_sets_nan_into_a_fixed_point_stream(cfg, dtype):
    """Splits 1 (store) and 2, 4 (atomics): a row whose product is NaN (a NaN in its activation) becomes
    NaN in the stream, and so does an element whose product is infinite (fp16) or past FIXED_MAX (fp32,
    a product of 9e8); an element that was NaN stays NaN; every other element is added as before."""
    n, k = SHAPES["o_proj_residual"]
    i = ks.get_op("o_proj_residual").make_inputs(4, n, k, dtype, DEVICE, torch.Generator(device=DEVICE).manual_seed(0))
    x, w = i["x"].clone(), i["w"].clone()
    x[0, 5] = float("nan")
    if dtype == HALF:
        x[2, 1] = float("inf")  # inf or NaN in all of row 2
        big = [(2, c) for c in range(n)]
    else:
        x[2], w[4] = 3e3, 3e3  # (2, 4) is 9e8: past FIXED_MAX, under what reads as NaN; the rest stays small
        big = [(2, 4)]
    start = to_fixed(i["residual"] * 3.7)
    start[1, 3] = FIXED_NAN
    want = ks.get_op("o_proj_residual").reference({**i, "x": x, "w": w, "residual": start})[0]
    expected = torch.zeros(4, n, dtype=torch.bool, device=DEVICE)
    expected[0] = expected[1, 3] = True
    for r, c in big:
        expected[r, c] = True
    for fn, args in ((o_proj_residual, (cfg,)), (o_proj_residual_unfused, ())):
        out = stream_values(fn(x, start.clone(), w, *args, accumulate=True), torch.float64)
        assert torch.equal(out.isnan(), expected), fn.__name__
        assert rel_error(out[~expected], want[~expected]) < TOLERANCE[dtype], fn.__name__


@pytest.mark.parametrize("op", ["rmsnorm_qkv", "lm_head"])
def test_a_norm_op_reads_nan_from_a_fixed_point_stream(op):
    """A row of h holding FIXED_NAN in one element: that row's output all NaN (its sum of squares is),
    every other row as with no NaN, in every prologue."""
    spec = ks.get_op(op)
    i = _inputs(op, 3)
    h = to_fixed(i["h"] * 1.5)
    want = spec.reference({**i, "h": h})[0]
    h[1, 7] = FIXED_NAN
    configs = [c for c in CONFIGS if spec.check(c, 3, *SHAPES[op], 2) is None]
    for cfg in configs + [None]:
        out = (spec.fused({**i, "h": h}, cfg) if cfg else spec.unfused({**i, "h": h}))[0]
        assert out[1].isnan().all() and not out[[0, 2]].isnan().any(), cfg
        assert rel_error(out[[0, 2]], want[[0, 2]]) < TOLERANCE[HALF], cfg


@pytest.mark.parametrize("dtype", [HALF, torch.float32, torch.bfloat16], ids=["fp16", "fp32", "bf16"])
def test_the_stream_conversion_kernels_agree_with_the_reference(dtype):
    """kernel_space.fixed_point's one-launch widening and reading (the decode forward's, on the GPU)
    against _common's PyTorch: the same integers (ties away from zero in both), NaN and overflow alike."""
    from kernel_space import fixed_point

    gen = torch.Generator(device=DEVICE).manual_seed(4)
    t = (torch.randn(3, 1000, generator=gen, device=DEVICE) * 50).to(dtype)
    t[0, :5] = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0], dtype=dtype)
    if dtype != HALF:
        t[1, :2] = torch.tensor([FIXED_MAX, -3e9], dtype=dtype)
    fixed = fixed_point.to_fixed(t, triton_kernel=True)
    assert fixed.dtype == torch.int64 and torch.equal(fixed, to_fixed(t))
    fixed[2, 7] = FIXED_NAN + 12345  # a NaN that finite adds moved
    fixed[2, 8] = -(2**63)
    back = fixed_point.stream_values(fixed, triton_kernel=True)
    assert back.dtype == torch.float32 and torch.equal(back.isnan(), stream_values(fixed).isnan())
    assert torch.equal(back.nan_to_num(), stream_values(fixed).nan_to_num())
    with pytest.raises(ValueError, match="contiguous"):
        fixed_point.to_fixed(t.t(), triton_kernel=True)
    with pytest.raises(ValueError, match="reads a fixed-point"):
        fixed_point.stream_values(t, triton_kernel=True)
