"""rmsnorm_qkv: qkv = rmsnorm(h) @ Wqkv^T, exactly as the model calls it.

Wqkv is [(heads + 2 kv_heads) * head_dim, hidden], the q, k and v projections stacked by rows. h
already holds the residual stream: the previous layer's down_residual added it in its epilogue (and
the first layer's h is the embedding), so this site has no residual add. It used to be tuned with one,
paying for an add (and a second activation stream) that the model never runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernel_space import _gemm
from kernel_space._common import check_norm_op, linear_weight, randn, rmsnorm_eager, rmsnorm_ref
from kernel_space.spec import DEFAULT_SPACE, ModelDims, OpSpec


def rmsnorm_qkv(h, norm_w, w, cfg: dict, eps: float = 1e-6):
    """Fused launcher. h [M, K], norm_w [K] (or None: the gain is folded into w), w [N, K] -> qkv [M, N]."""
    check_norm_op(h, norm_w, w, eps)
    return _gemm.launch_fused_linear(h, w, cfg, norm_w=norm_w, norm=True, eps=eps)


def rmsnorm_qkv_unfused(h, norm_w, w, eps: float = 1e-6):
    """What a plain model runs: the norm in torch, then the cuBLAS GEMM."""
    check_norm_op(h, norm_w, w, eps)
    return F.linear(rmsnorm_eager(h, norm_w, eps, w.dtype), w)


def rmsnorm_qkv_reference(h, norm_w, w, eps: float = 1e-6):
    return rmsnorm_ref(h, norm_w, eps) @ w.to(torch.float64).T


def shape(d: ModelDims) -> tuple[int, int]:
    return (d.heads + 2 * d.kv_heads) * d.head_dim, d.hidden


def make_inputs(m, n, k, dtype, device, gen):
    """As the model runs the site: its norm gain folded into w (Qwen3ForCausalLM.fold_norm_gains), so
    norm_w is None and w is the folded weight."""
    return {
        "h": randn((m, k), dtype, device, gen),
        "norm_w": None,
        "w": linear_weight(n, k, dtype, device, gen),
    }


SPEC = OpSpec(
    name="rmsnorm_qkv",
    shape=shape,
    gated=False,
    space=DEFAULT_SPACE,
    make_inputs=make_inputs,
    fused=lambda i, cfg: (rmsnorm_qkv(i["h"], i["norm_w"], i["w"], cfg),),
    unfused=lambda i: (rmsnorm_qkv_unfused(i["h"], i["norm_w"], i["w"]),),
    cublas=lambda i: (F.linear(i["h"], i["w"]),),
    reference=lambda i: (rmsnorm_qkv_reference(i["h"], i["norm_w"], i["w"]),),
    output_names=("qkv",),
    norm=True,
    kernel_sources=_gemm.KERNEL_SOURCES,
)
