"""The ops on a residual stream wider than the 16-bit weights, fp32 or fixed point (int64 in units of
2^-24; qwen3.model.STREAM_ENV): o_proj and down add into it in place (launch_fused_linear's accumulate:
each split-K program adds its product with an atomic), the norm ops read it and write their output in
the weight's dtype. Against the fp64 references,
through Triton's interpreter on the CPU (fp16: the interpreter's bf16 tl.dot is wrong), or on the GPU."""

import pytest
import torch

import kernel_space as ks
from kernel_space import _gemm
from kernel_space._common import TOLERANCE, check_norm_op, rel_error, stream_values, to_fixed
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
