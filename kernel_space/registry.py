"""The registry of ops: every op's spec by name, their shapes and kernel hashes.

OPS are the linear fusion sites the model calls through the dispatcher at M tokens (one weight each);
ATTENTION_OPS holds decode attention, which the same tuner tunes into the same table, keyed by batch
and context (kernel_space.attention_shape). ALL_OPS is both: what a tune covers by default, what a
table may hold and what the GPU fingerprint hashes."""

from __future__ import annotations

import hashlib
import inspect
import sys

from kernel_space import decode_attention, down_residual, lm_head, o_proj_residual, rmsnorm_gate_up_silu, rmsnorm_qkv
from kernel_space.spec import ModelDims, OpSpec

OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in (rmsnorm_qkv.SPEC, o_proj_residual.SPEC, rmsnorm_gate_up_silu.SPEC, down_residual.SPEC, lm_head.SPEC)
}
ATTENTION_OPS: dict[str, OpSpec] = {decode_attention.SPEC.name: decode_attention.SPEC}
ALL_OPS: dict[str, OpSpec] = {**OPS, **ATTENTION_OPS}


def get_op(name: str) -> OpSpec:
    """The spec of op `name` (a linear site or decode attention); a ValueError lists the known ops."""
    spec = OPS.get(name) or ATTENTION_OPS.get(name)
    if spec is None:
        raise ValueError(f"unknown op {name!r}; known ops: {', '.join(ALL_OPS)}")
    return spec


def op_shapes(dims: ModelDims) -> dict[str, tuple[int, int]]:
    """(N, K) of every linear site's weight for a model."""
    return {name: spec.shape(dims) for name, spec in OPS.items()}


def kernel_hash(name: str) -> str:
    """sha256 over the source of the Triton code an op runs, and over what the op computes around
    it (its launcher's variant): a table tuned on other code is stale."""
    spec = get_op(name)
    digest = hashlib.sha256()
    # The op's own module: its launcher decides which variant of the shared kernel runs.
    digest.update(inspect.getsource(sys.modules[spec.make_inputs.__module__]).encode())
    for fn in spec.kernel_sources:
        src = getattr(fn, "src", None) or inspect.getsource(getattr(fn, "fn", fn))
        digest.update(src.encode())
    digest.update(name.encode())
    return digest.hexdigest()[:16]
