"""A plausible database, written through the Store API: two GPUs, three models, trials and winners.

Times at M = 1 are DESIGN.md's H100 anchors (floor, eager unfused, cuBLAS alone); fused times are
made up around them so that every case the queries tell apart is present: a fusion beating cuBLAS,
one beating only the unfused arm, an unfused winner, a study with no winner yet, failures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import kernel_space
from kernel_space.spec import Problem
from qwen3.config import PRESETS
from storage import Store, StudyRef

HASHES = {op: kernel_space.kernel_hash(op) for op in kernel_space.OPS}
H100 = {
    "device_name": "NVIDIA H100 80GB HBM3", "capability": [9, 0], "sm_count": 132, "total_memory": 85520809984,
    "driver": "570.124.06", "cuda": "12.8", "torch": "2.11.0", "triton": "3.6.0", "kernel_hashes": HASHES,
}
H200 = {**H100, "device_name": "NVIDIA H200", "total_memory": 150754820096}

FUSED = {"impl": "fused", "path": "dot", "BLOCK_M": 16, "BLOCK_N": 64, "BLOCK_K": 256, "SPLIT_K": 4, "GROUP_M": 1,
         "num_warps": 4, "num_stages": 3, "split_reduce": "last_program", "prologue": "inline"}
FMA = {**FUSED, "path": "fma", "BLOCK_M": 1, "BLOCK_N": 8, "BLOCK_K": 512, "SPLIT_K": 1, "split_reduce": "kernel"}
UNFUSED = {"impl": "unfused"}

SMEM_REASONS = ("invalid config: shared memory estimate 245760 B exceeds the device limit 232448 B",
                "invalid config: shared memory estimate 262656 B exceeds the device limit 232448 B")
COMPILE_REASON = "CompilationError: at 41:8: out of resource: registers"
INCORRECT_REASON = "rel error 3.1e-01 > 1e-02"

# (gpu, model, op, m, winner arm, winner us, unfused us, cublas us, floor us); None arm: no winner yet.
WINNERS = [
    (H100, "qwen3-0.6b", "rmsnorm_qkv", 1, "fused", 4.9, 20.3, 6.0, 2.8),
    (H100, "qwen3-0.6b", "rmsnorm_qkv", 16, "fused", 5.2, 20.9, 6.1, 2.9),
    (H100, "qwen3-0.6b", "rmsnorm_qkv", 256, "unfused", 24.0, 24.0, 14.0, 6.0),
    (H100, "qwen3-0.6b", "o_proj_residual", 1, "fused", 6.5, 7.3, 5.9, 1.4),
    (H100, "qwen3-0.6b", "rmsnorm_gate_up_silu", 1, "fused", 7.0, 25.3, 7.3, 4.2),
    (H100, "qwen3-0.6b", "down_residual", 1, "unfused", 9.1, 9.1, 7.7, 2.1),
    (H100, "qwen3-0.6b", "down_residual", 16, None, None, None, None, None),
    (H100, "qwen3-8b", "rmsnorm_qkv", 1, "fused", 19.0, 46.2, 24.7, 16.8),
    (H100, "qwen3-8b", "down_residual", 1, "fused", 37.0, 43.6, 40.9, 33.6),
    (H200, "qwen3-0.6b", "rmsnorm_qkv", 1, "fused", 4.4, 18.0, 5.5, 2.3),
]


@dataclass
class Filled:
    url: str
    studies: dict = field(default_factory=dict)  # (gpu name, model, op, m) -> StudyRef
    trials: int = 0
    winners: int = 0


def shape(model: str, op: str) -> tuple[int, int]:
    return kernel_space.op_shapes(PRESETS[model].dims())[op]


def fill(store: Store) -> Filled:
    """Write WINNERS (with trials) into `store`; the fine-tune qwen3-0.6b-ft shares 0.6b's shapes."""
    out = Filled(store.url)
    for gpu, model, op, m, arm, median, unfused, cublas, floor in WINNERS:
        n, k = shape(model, op)
        ref = store.study(gpu, Problem(op, m, n, k, "bfloat16"), model=model)
        if model == "qwen3-0.6b":
            assert store.study(gpu, Problem(op, m, n, k, "bfloat16"), model="qwen3-0.6b-ft") == ref
        out.studies[(gpu["device_name"], model, op, m)] = ref
        out.trials += add_trials(store, ref, unfused or 10.0, cublas or 5.0, median or 12.0)
        if arm is not None:
            cfg = UNFUSED if arm == "unfused" else (FMA if m == 1 and op == "down_residual" else FUSED)
            store.set_winner(ref.id, arm=arm, config=cfg, median_us=median, unfused_us=unfused, cublas_us=cublas,
                             floor_us=floor, speedup=round(unfused / median, 4),
                             speedup_vs_cublas=round(cublas / median, 4))
            out.winners += 1
    # Failures on one study: two of one kind (numbers differ), one compile error, one wrong result.
    ref = out.studies[("NVIDIA H100 80GB HBM3", "qwen3-0.6b", "rmsnorm_qkv", 1)]
    for number, reason in enumerate(SMEM_REASONS, start=10):
        store.add_trial(ref.id, trial_number=number, arm="fused", config=FUSED, status="failed", reason=reason)
    store.add_trial(ref.id, trial_number=12, arm="fused", config=FMA, status="failed", reason=COMPILE_REASON,
                    compile_s=3.2)
    store.add_trial(ref.id, trial_number=13, arm="fused", config=FMA, status="incorrect", reason=INCORRECT_REASON,
                    rel_error=0.31, compile_s=1.1)
    out.trials += 4
    return out


def add_trials(store: Store, ref: StudyRef, unfused_us: float, cublas_us: float, best_us: float) -> int:
    """Baselines (no Optuna number) and two fused trials, the best at best_us."""
    store.add_trial(ref.id, trial_number=None, arm="unfused", config=UNFUSED, status="ok", rel_error=2e-3,
                    compile_s=0.1, median_us=unfused_us, p20_us=unfused_us * 0.98, p80_us=unfused_us * 1.03)
    store.add_trial(ref.id, trial_number=None, arm="cublas", config={"impl": "cublas"}, status="ok", rel_error=2e-3,
                    median_us=cublas_us, p20_us=cublas_us * 0.98, p80_us=cublas_us * 1.02)
    for number, scale in enumerate((1.3, 1.0)):
        store.add_trial(ref.id, trial_number=number, arm="fused", config=FUSED, status="ok", rel_error=3e-3,
                        compile_s=2.5, median_us=best_us * scale, p20_us=best_us * scale * 0.97,
                        p80_us=best_us * scale * 1.04)
    return 4
