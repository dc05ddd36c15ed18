"""kernel_space.prefill, the unfused arm at prefill sizes, against the eager baseline and the fp64
reference (through Triton's interpreter on the CPU), and where the dispatcher and the tuner use it."""

import pytest
import torch
import torch.nn.functional as F

import kernel_space as ks
from kernel_space import prefill
from kernel_space._common import TOLERANCE, poisoned_outputs, rel_error, rmsnorm_eager
from tests.conftest import DEVICE

SHAPES = {"rmsnorm_qkv": (40, 100), "o_proj_residual": (37, 100), "rmsnorm_gate_up_silu": (74, 100),
          "down_residual": (37, 136), "lm_head": (50, 100)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("k", [1, 72, 100, 1024])
def test_rmsnorm_rounds_as_the_eager_norm(dtype, k):
    gen = torch.Generator(device=DEVICE).manual_seed(k)
    h = torch.randn((5, k), generator=gen, device=DEVICE).to(dtype) * 3
    g = (1 + 0.1 * torch.randn((k,), generator=gen, device=DEVICE)).to(dtype)
    with poisoned_outputs():
        out = prefill.rmsnorm(h, g, 1e-6)
    eager = rmsnorm_eager(h, g, 1e-6)
    assert out.dtype == dtype and out.shape == h.shape
    # The same roundings; only the order of the fp32 sum of squares differs (one ulp at most).
    ulp = torch.finfo(dtype).eps
    assert (out.float() - eager.float()).abs().max() <= 2 * ulp * eager.float().abs().max()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_rmsnorm_without_a_gain_is_the_eager_norm_without_one(dtype):
    """The gain folded into the next weight: the norm alone, rounded once to the dtype."""
    gen = torch.Generator(device=DEVICE).manual_seed(3)
    h = torch.randn((4, 300), generator=gen, device=DEVICE).to(dtype) * 3
    out = prefill.rmsnorm(h, None, 1e-6)
    eager = rmsnorm_eager(h, None, 1e-6)
    ulp = torch.finfo(dtype).eps
    assert (out.float() - eager.float()).abs().max() <= 2 * ulp * eager.float().abs().max()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("inter", [1, 37, 1500])  # 1500: two column blocks of SILU_BLOCK, the last partial
def test_silu_mul_is_silu_of_gate_times_up(dtype, inter):
    gen = torch.Generator(device=DEVICE).manual_seed(inter)
    gate_up = torch.randn((3, 2 * inter), generator=gen, device=DEVICE).to(dtype) * 4
    with poisoned_outputs():
        out = prefill.silu_mul(gate_up)
    gate, up = gate_up.chunk(2, dim=-1)
    assert rel_error(out, F.silu(gate) * up) < (1e-6 if dtype == torch.float32 else 2e-3)


@pytest.mark.parametrize("op", list(prefill.ARMS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_each_site_matches_its_reference_at_prefill_rows(op, dtype):
    n, k = SHAPES[op]
    spec = ks.get_op(op)
    gen = torch.Generator(device=DEVICE).manual_seed(7)
    inputs = spec.make_inputs(prefill.PREFILL_ROWS + 3, n, k, dtype, DEVICE, gen)
    with poisoned_outputs():
        (out,) = prefill.ARMS[op](inputs)
    (ref,) = spec.reference(inputs)
    (eager,) = spec.unfused(inputs)
    assert out.shape == eager.shape and out.dtype == eager.dtype
    assert rel_error(out, ref) < TOLERANCE[dtype]
    assert rel_error(out, ref) < 2 * rel_error(eager, ref) + 1e-6  # no worse than the eager arm


def test_only_prefill_rows_on_triton_tensors_take_the_path(monkeypatch):
    t = torch.zeros(1, device=DEVICE)
    assert not prefill.serves(prefill.PREFILL_ROWS - 1, t)
    assert prefill.serves(prefill.PREFILL_ROWS, t)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert prefill.serves(prefill.PREFILL_ROWS, torch.zeros(1)) is False  # CPU without the interpreter


def test_bad_inputs_are_one_line_errors():
    x = torch.zeros((4, 8), device=DEVICE)
    with pytest.raises(ValueError, match="even column count"):
        prefill.silu_mul(torch.zeros((2, 5), device=DEVICE))
    with pytest.raises(ValueError, match=r"residual must be \[M, N\] = \[4, 3\]"):
        prefill.residual_linear(x, torch.zeros((4, 2), device=DEVICE), torch.zeros((3, 8), device=DEVICE))
    with pytest.raises(ValueError, match="eps must be a positive number"):
        prefill.rmsnorm_linear(x, torch.ones(8, device=DEVICE), torch.zeros((3, 8), device=DEVICE), eps=0)


def test_the_dispatcher_and_the_tuner_run_it_as_the_unfused_arm_from_prefill_rows(monkeypatch):
    from qwen3.dispatch import Dispatcher
    from tuner.measure import arm_fn

    calls = []
    real = prefill.residual_linear
    monkeypatch.setattr(prefill, "residual_linear", lambda *a: calls.append(a[0].shape[0]) or real(*a))
    n, k = SHAPES["down_residual"]
    spec = ks.get_op("down_residual")
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    for m in (1, prefill.PREFILL_ROWS):
        i = spec.make_inputs(m, n, k, torch.float32, DEVICE, gen)
        out = Dispatcher().down_residual(i["x"], i["residual"], i["w"])
        assert rel_error(out, spec.reference(i)[0]) < TOLERANCE[torch.float32]
        (tuned,) = arm_fn(spec, "unfused", None)(i)
        assert rel_error(tuned, spec.reference(i)[0]) < TOLERANCE[torch.float32]
    assert calls == [prefill.PREFILL_ROWS, prefill.PREFILL_ROWS]  # M = 1 ran the eager baseline, twice
