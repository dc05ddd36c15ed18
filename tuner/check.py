"""A correctness-and-speed check of every op at a model's shapes: the quick proof that the kernels
work on this machine. On a GPU each op is also timed (fused default config, unfused path, cuBLAS GEMM
alone, HBM floor). Without one, Triton's interpreter runs the kernels on the CPU (use small shapes).
Decode attention is checked at each M as its batch, over a cache of CHECK_CONTEXT slots (the
interpreter's: INTERPRETER_CONTEXTS)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

import kernel_space as ks
from kernel_space.attention_shape import INTERPRETER_CONTEXTS, describe, encode_m
from kernel_space.spec import Problem
from tuner import measure
from tuner.candidates import default_configs
from tuner.trial import run_trial

CHECK_CONTEXT = 4096  # decode attention's cache slots on a GPU


@dataclass
class CheckRow:
    op: str
    m: int
    n: int
    k: int
    config: str
    rel_error: float | None
    passed: bool
    reason: str | None = None
    fused_us: float | None = None
    unfused_us: float | None = None
    cublas_us: float | None = None
    floor_us: float | None = None
    settings: dict | None = None  # the config itself (config is its key)


def check_ops(dims: ks.ModelDims, ms: list[int], dtype: torch.dtype, ops: list[str] | None = None,
              configs_per_case: int = 2, progress: Callable[[str], None] | None = None) -> list[CheckRow]:
    """Check `configs_per_case` default configs of every op (decode attention's included) at every M (and
    time them on a GPU). A row's m is the study key (kernel_space.attention_shape.describe shows it)."""
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    if cuda:
        props = torch.cuda.get_device_properties(0)
        sm_count, smem = props.multi_processor_count, props.shared_memory_per_block_optin
        bandwidth, flops = measure.measure_copy_bandwidth(device), measure.measure_matmul_rate(device)
    else:
        sm_count, smem, bandwidth, flops = 132, ks.spec.DEFAULT_SMEM_LIMIT, None, None
    rows = []
    context = CHECK_CONTEXT if cuda else INTERPRETER_CONTEXTS[-1]
    for op in ops or list(ks.ALL_OPS):
        spec = ks.get_op(op)
        n, k = spec.shape(dims)
        for m in [encode_m(b, context) for b in ms] if spec.kind == "attention" else ms:
            problem = Problem(op, m, n, k, str(dtype).removeprefix("torch."))
            rotation = measure.rotation_inputs(spec, m, n, k, dtype, device, 0) if cuda else None
            base = {}
            if cuda:
                base = dict(
                    unfused_us=run_trial(problem, "unfused", None, device, rotation, 1).median_us,
                    cublas_us=(run_trial(problem, "cublas", None, device, rotation, 2).median_us
                               if spec.cublas else None),  # decode attention has no cuBLAS arm
                    floor_us=measure.floor_us(spec, m, n, k, dtype, device, bandwidth, flops),
                )
            for i, cfg in enumerate(default_configs(op, m, n, k, dtype.itemsize, sm_count, smem)[:configs_per_case]):
                if progress:
                    progress(f"{op} {describe(op, m)} {ks.config_key(cfg)}")
                t = run_trial(problem, "fused", cfg, device, rotation, 10 + i, smem, time_it=cuda)
                rows.append(CheckRow(op, m, n, k, ks.config_key(cfg), t.rel_error, t.status == "ok", t.reason,
                                     fused_us=t.median_us, settings=dict(cfg), **base))
    return rows
