"""o_proj_residual: out = residual + attn @ Wo^T, with Wo [hidden, heads * head_dim].

The add rides in the GEMM's epilogue. (An earlier hand-written GEMV for this fusion came out 2.2x
slower than cuBLAS + add: one program per output element, no split-K, too few bytes in flight.
Here the tile shape and the split are searched.)

Where the model keeps its residual stream in fp32 or fixed point (qwen3.model.STREAM_ENV), the op adds
into it in place instead (accumulate): each split-K program adds its product with an atomic, and
nothing reduces the splits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernel_space import _gemm
from kernel_space._common import (
    STREAM_DTYPES,
    STREAM_INPUT_DTYPES,
    add_fixed_,
    check_matrix,
    linear_weight,
    randn,
    stream_values,
)
from kernel_space.spec import DEFAULT_SPACE, ModelDims, OpSpec


def o_proj_residual(x, residual, w, cfg: dict, accumulate: bool = False):
    """Fused launcher. x [M, K], residual [M, N], w [N, K] -> out [M, N]. accumulate: residual is the
    model's residual stream in fp32 or fixed point (int64), updated in place (residual += x @ w^T, each
    split added by an atomic: _gemm._accumulate) and returned."""
    _check(x, residual, w, accumulate)
    return _gemm.launch_fused_linear(x, w, cfg, res_out=residual, accumulate=accumulate)


def o_proj_residual_unfused(x, residual, w, accumulate: bool = False):
    _check(x, residual, w, accumulate)
    if accumulate:
        product = F.linear(x, w)
        return add_fixed_(residual, product) if residual.dtype == torch.int64 else residual.add_(product)
    return residual + F.linear(x, w)


def o_proj_residual_reference(x, residual, w):
    """In fp64; a fixed-point residual (int64) counts in units of 2^-24."""
    return stream_values(residual, torch.float64) + x.to(torch.float64) @ w.to(torch.float64).T


def _check(x, residual, w, accumulate: bool = False):
    check_matrix("x", x)
    check_matrix("w", w, cols=x.shape[1], like=x)
    if not accumulate:
        check_matrix("residual", residual, rows=x.shape[0], cols=w.shape[0], like=x)
        return
    check_matrix("residual", residual, rows=x.shape[0], cols=w.shape[0], dtypes=STREAM_INPUT_DTYPES)
    if residual.dtype not in STREAM_DTYPES:
        raise ValueError("accumulate adds into an fp32 or fixed-point (int64) residual stream; "
                         f"residual has dtype {residual.dtype}")
    if residual.device != x.device:
        raise ValueError(f"residual is on {residual.device}, but the activation is on {x.device}")


def shape(d: ModelDims) -> tuple[int, int]:
    return d.hidden, d.heads * d.head_dim


def make_inputs(m, n, k, dtype, device, gen):
    return {
        "x": randn((m, k), dtype, device, gen),
        "residual": randn((m, n), dtype, device, gen),
        "w": linear_weight(n, k, dtype, device, gen),
    }


SPEC = OpSpec(
    name="o_proj_residual",
    shape=shape,
    gated=False,
    space=DEFAULT_SPACE,
    make_inputs=make_inputs,
    fused=lambda i, cfg: (o_proj_residual(i["x"], i["residual"], i["w"], cfg),),
    unfused=lambda i: (o_proj_residual_unfused(i["x"], i["residual"], i["w"]),),
    cublas=lambda i: (F.linear(i["x"], i["w"]),),
    reference=lambda i: (o_proj_residual_reference(i["x"], i["residual"], i["w"]),),
    kernel_sources=_gemm.KERNEL_SOURCES,
)
