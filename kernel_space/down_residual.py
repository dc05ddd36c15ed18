"""down_residual: out = residual + act @ Wd^T, with Wd [hidden, intermediate].

The computation is o_proj_residual's (a GEMM with the residual in its epilogue), so the launcher,
baseline and reference are that module's; what differs is the shape and so the tuned config:
K = intermediate is 3x hidden, which gives split-K room, and at Qwen3-8B the weight is 100 MB.
"""

from __future__ import annotations

import torch.nn.functional as F

from kernel_space import _gemm
from kernel_space._common import linear_weight, randn
from kernel_space.o_proj_residual import (
    o_proj_residual as down_residual,
)
from kernel_space.o_proj_residual import (
    o_proj_residual_reference as down_residual_reference,
)
from kernel_space.o_proj_residual import (
    o_proj_residual_unfused as down_residual_unfused,
)
from kernel_space.spec import DEFAULT_SPACE, ModelDims, OpSpec

__all__ = ["down_residual", "down_residual_unfused", "down_residual_reference", "SPEC"]


def shape(d: ModelDims) -> tuple[int, int]:
    return d.hidden, d.intermediate


def make_inputs(m, n, k, dtype, device, gen):
    # act = silu(g) * u has a smaller spread than a unit normal: keep the inputs shaped like the model's.
    return {
        "x": randn((m, k), dtype, device, gen, scale=0.5),
        "residual": randn((m, n), dtype, device, gen),
        "w": linear_weight(n, k, dtype, device, gen),
    }


SPEC = OpSpec(
    name="down_residual",
    shape=shape,
    gated=False,
    space=DEFAULT_SPACE,
    make_inputs=make_inputs,
    fused=lambda i, cfg: (down_residual(i["x"], i["residual"], i["w"], cfg),),
    unfused=lambda i: (down_residual_unfused(i["x"], i["residual"], i["w"]),),
    cublas=lambda i: (F.linear(i["x"], i["w"]),),
    reference=lambda i: (down_residual_reference(i["x"], i["residual"], i["w"]),),
    kernel_sources=_gemm.KERNEL_SOURCES,
)
