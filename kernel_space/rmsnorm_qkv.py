"""rmsnorm_qkv: h = x + residual (the new residual, written out); qkv = rmsnorm(h) @ Wqkv^T.

Wqkv is [(heads + 2 kv_heads) * head_dim, hidden], the q, k and v projections stacked by rows.
With residual=None the op is rmsnorm(x) @ Wqkv^T and h is x itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernel_space import _gemm
from kernel_space._common import (
    check_norm_op,
    linear_weight,
    norm_weight,
    randn,
    rmsnorm_eager,
    rmsnorm_ref,
)
from kernel_space.spec import DEFAULT_SPACE, ModelDims, OpSpec


def rmsnorm_qkv(x, residual, norm_w, w, cfg: dict, eps: float = 1e-6):
    """Fused launcher. Returns (qkv [M, N], h [M, K])."""
    check_norm_op(x, residual, norm_w, w, eps)
    out, h = _gemm.launch_fused_linear(x, w, cfg, res_in=residual, norm_w=norm_w, eps=eps)
    return out, (h if residual is not None else x)


def rmsnorm_qkv_unfused(x, residual, norm_w, w, eps: float = 1e-6):
    """What a plain model runs: the add and the norm in torch, then the cuBLAS GEMM."""
    check_norm_op(x, residual, norm_w, w, eps)
    if residual is not None:
        h = (x.float() + residual.float()).to(x.dtype)
    else:
        h = x
    return F.linear(rmsnorm_eager(h, norm_w, eps), w), h


def rmsnorm_qkv_reference(x, residual, norm_w, w, eps: float = 1e-6):
    h = x.to(torch.float64) + (residual.to(torch.float64) if residual is not None else 0)
    return rmsnorm_ref(h, norm_w, eps) @ w.to(torch.float64).T, h


def shape(d: ModelDims) -> tuple[int, int]:
    return (d.heads + 2 * d.kv_heads) * d.head_dim, d.hidden


def make_inputs(m, n, k, dtype, device, gen):
    return {
        "x": randn((m, k), dtype, device, gen),
        "residual": randn((m, k), dtype, device, gen),
        "norm_w": norm_weight(k, dtype, device, gen),
        "w": linear_weight(n, k, dtype, device, gen),
    }


SPEC = OpSpec(
    name="rmsnorm_qkv",
    shape=shape,
    gated=False,
    space=DEFAULT_SPACE,
    make_inputs=make_inputs,
    fused=lambda i, cfg: rmsnorm_qkv(i["x"], i["residual"], i["norm_w"], i["w"], cfg),
    unfused=lambda i: rmsnorm_qkv_unfused(i["x"], i["residual"], i["norm_w"], i["w"]),
    cublas=lambda i: (F.linear(i["x"], i["w"]),),
    reference=lambda i: rmsnorm_qkv_reference(i["x"], i["residual"], i["norm_w"], i["w"]),
    output_names=("qkv", "h"),
    a_inputs=2,
    norm=True,
    kernel_sources=_gemm.KERNEL_SOURCES,
)
