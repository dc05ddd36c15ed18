"""rmsnorm_gate_up_silu: g, u = rmsnorm(h) @ [Wg; Wu]^T; out = silu(g) * u.

W is [2I, hidden] with the gate rows first (as nano-vllm merges them). Each program holds a gate
and an up accumulator for the same columns, so the [M, 2I] intermediate is never written. h is
o_proj_residual's output, which already holds the residual stream: there is no add here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernel_space import _gemm
from kernel_space._common import check_norm_op, linear_weight, randn, rmsnorm_eager, rmsnorm_ref
from kernel_space.spec import DEFAULT_SPACE, ModelDims, OpSpec


def rmsnorm_gate_up_silu(h, norm_w, w, cfg: dict, eps: float = 1e-6):
    """Fused launcher. h [M, H], norm_w [H] (or None: the gain is folded into w), w [2I, H] -> act [M, I]."""
    _check(h, norm_w, w, eps)
    return _gemm.launch_fused_linear(h, w, cfg, norm_w=norm_w, norm=True, gated=True, eps=eps)


def rmsnorm_gate_up_silu_unfused(h, norm_w, w, eps: float = 1e-6):
    _check(h, norm_w, w, eps)
    gate, up = F.linear(rmsnorm_eager(h, norm_w, eps, w.dtype), w).chunk(2, dim=-1)
    return F.silu(gate) * up


def rmsnorm_gate_up_silu_reference(h, norm_w, w, eps: float = 1e-6):
    gate, up = (rmsnorm_ref(h, norm_w, eps) @ w.to(torch.float64).T).chunk(2, dim=-1)
    return F.silu(gate) * up


def _check(h, norm_w, w, eps):
    check_norm_op(h, norm_w, w, eps)
    if w.shape[0] % 2:
        raise ValueError(f"w must stack gate and up rows ([2I, K]); got an odd row count {w.shape[0]}")


def shape(d: ModelDims) -> tuple[int, int]:
    """(N, K) of the weight: N counts both halves, 2 * intermediate."""
    return 2 * d.intermediate, d.hidden


def make_inputs(m, n, k, dtype, device, gen):
    """As the model runs the site: its norm gain folded into w (Qwen3ForCausalLM.fold_norm_gains), so
    norm_w is None and w is the folded weight."""
    return {
        "h": randn((m, k), dtype, device, gen),
        "norm_w": None,
        "w": linear_weight(n, k, dtype, device, gen),
    }


SPEC = OpSpec(
    name="rmsnorm_gate_up_silu",
    shape=shape,
    gated=True,
    norm=True,
    space=DEFAULT_SPACE,
    make_inputs=make_inputs,
    fused=lambda i, cfg: (rmsnorm_gate_up_silu(i["h"], i["norm_w"], i["w"], cfg),),
    unfused=lambda i: (rmsnorm_gate_up_silu_unfused(i["h"], i["norm_w"], i["w"]),),
    cublas=lambda i: (F.linear(i["h"], i["w"]),),
    reference=lambda i: (rmsnorm_gate_up_silu_reference(i["h"], i["norm_w"], i["w"]),),
    kernel_sources=_gemm.KERNEL_SOURCES,
)
