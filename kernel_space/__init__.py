"""The searchable fused kernels of a Qwen3 decoder layer, one module per op, and their registry.

The bottom layer of the project: it imports nothing of ours. `kernel_space.spec` (the search space
and its shape rules) and `kernel_space.buckets` import neither torch nor Triton, so storage can use
them without paying for either; the registry names below load the op modules (and torch) on first use.
"""

from __future__ import annotations

from kernel_space.spec import (
    DEFAULT_SPACE,
    UNFUSED_CONFIG,
    ModelDims,
    OpSpec,
    Problem,
    SearchSpace,
    check_config,
    config_key,
)

_REGISTRY = ("OPS", "ALL_OPS", "ATTENTION_OPS", "get_op", "kernel_hash", "op_shapes")


def __getattr__(name: str):
    # PEP 562: the registry imports the op modules (torch, Triton) only when asked for.
    if name in _REGISTRY:
        from kernel_space import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'kernel_space' has no attribute {name!r}")


__all__ = [
    "OPS",
    "ALL_OPS",
    "ATTENTION_OPS",
    "DEFAULT_SPACE",
    "UNFUSED_CONFIG",
    "ModelDims",
    "OpSpec",
    "Problem",
    "SearchSpace",
    "check_config",
    "config_key",
    "get_op",
    "kernel_hash",
    "op_shapes",
]
