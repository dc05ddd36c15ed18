"""lm_head: logits = rmsnorm(h) @ Wvocab^T, the model's final norm and LM head in one kernel.

Wvocab is [vocab, hidden] (the embedding itself when the model ties them). At Qwen3-0.6B it is
151,936 x 1,024: 311 MB, about a quarter of the bytes a decode step reads, so it is worth the same
search as the layer's GEMMs; the unfused path runs the norm in torch, then the cuBLAS GEMM.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernel_space import _gemm
from kernel_space._common import check_norm_op, linear_weight, norm_weight, randn, rmsnorm_eager, rmsnorm_ref
from kernel_space.spec import DEFAULT_SPACE, ModelDims, OpSpec


def lm_head(h, norm_w, w, cfg: dict, eps: float = 1e-6):
    """Fused launcher. h [M, K], norm_w [K], w [vocab, K] -> logits [M, vocab]."""
    check_norm_op(h, norm_w, w, eps)
    return _gemm.launch_fused_linear(h, w, cfg, norm_w=norm_w, norm=True, eps=eps)


def lm_head_argmax(h, norm_w, w, cfg: dict, eps: float = 1e-6):
    """Greedy decoding's LM head: the argmax of lm_head(h, norm_w, w, cfg) per row, [M] int64, without
    writing the logits (each tile keeps its rows' best value and column; the first column of the largest
    value, as torch.argmax of the logits picks). Logits with NaN are not handled as torch.argmax does."""
    check_norm_op(h, norm_w, w, eps)
    return _gemm.launch_fused_linear(h, w, cfg, norm_w=norm_w, norm=True, eps=eps, argmax=True)


def lm_head_unfused(h, norm_w, w, eps: float = 1e-6):
    check_norm_op(h, norm_w, w, eps)
    return F.linear(rmsnorm_eager(h, norm_w, eps, w.dtype), w)


def lm_head_reference(h, norm_w, w, eps: float = 1e-6):
    return rmsnorm_ref(h, norm_w, eps) @ w.to(torch.float64).T


def shape(d: ModelDims) -> tuple[int, int]:
    return d.vocab, d.hidden


def make_inputs(m, n, k, dtype, device, gen):
    return {
        "h": randn((m, k), dtype, device, gen),
        "norm_w": norm_weight(k, dtype, device, gen),
        "w": linear_weight(n, k, dtype, device, gen),
    }


SPEC = OpSpec(
    name="lm_head",
    shape=shape,
    gated=False,
    space=DEFAULT_SPACE,
    make_inputs=make_inputs,
    fused=lambda i, cfg: (lm_head(i["h"], i["norm_w"], i["w"], cfg),),
    unfused=lambda i: (lm_head_unfused(i["h"], i["norm_w"], i["w"]),),
    cublas=lambda i: (F.linear(i["h"], i["w"]),),
    reference=lambda i: (lm_head_reference(i["h"], i["norm_w"], i["w"]),),
    output_names=("logits",),
    norm=True,
    gain=True,  # the final norm's gain stays out of the weight: the embedding is tied at 0.6B and 1.7B
    kernel_sources=_gemm.KERNEL_SOURCES,
)
