"""The runtime dispatcher: per fusion site and batch size M, the fused kernel a dispatch table chose,
or the unfused baseline.

A model calls one method per fusion site with explicit tensors (`ops.rmsnorm_qkv(h, norm_w, w,
eps)` and so on). Each looks M = x.shape[0] up by interval in the table (the bucket's
winner serves every M above the bucket below it up to its own m) and runs the fused launcher with
that bucket's config where the table picked `fused` and everything it was tuned for still holds;
anywhere else it runs the `_unfused` baseline. Past the last tuned bucket (M greater than the
largest bucket's m) it runs the baseline and warns once per op. With no table it is the baseline
everywhere. From kernel_space.prefill.PREFILL_ROWS tokens on (a prefill), the baseline is that
module's path: cuBLAS's GEMMs with one-pass Triton RMSNorm and SiLU-multiply kernels and the
residual in the GEMM's epilogue, where eager PyTorch would make ~8 passes over the activations.

A table is data: it is parsed and type-checked by storage.table, its configs are re-checked with
the op's check_config, and only the search-space keys of a config (ints and a few names) ever
reach a launcher. Nothing in a table is executed.

Decode attention is looked up too (attention_config, which the model's attention layers call with
their AttentionProblem when they launch or are captured): the table's decode_attention bucket of
the smallest tuned context >= the cache's slots and in it the smallest tuned batch >= the batch
(OpEntry.attention_lookup). Without such a bucket (no attention entries, past the last one, a kernel
hash, shape or dtype that differs) it runs what runs without a table, its default plan
(kernel_space.decode_attention.plan_from_qkv); past the last bucket it says so once.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from kernel_space import ALL_OPS, OPS, get_op, kernel_hash, prefill
from kernel_space._common import STREAM_DTYPES
from kernel_space.attention_shape import ATTENTION_OP, describe, encode_heads
from kernel_space.combine_o_proj import o_proj_residual_combined
from kernel_space.decode_attention import AttentionProblem, SplitPartials
from kernel_space.down_residual import down_residual, down_residual_unfused
from kernel_space.fingerprint import current_fingerprint, same_hardware
from kernel_space.lm_head import lm_head, lm_head_argmax, lm_head_unfused
from kernel_space.o_proj_residual import o_proj_residual, o_proj_residual_unfused
from kernel_space.rmsnorm_gate_up_silu import rmsnorm_gate_up_silu, rmsnorm_gate_up_silu_unfused
from kernel_space.rmsnorm_qkv import rmsnorm_qkv, rmsnorm_qkv_unfused
from kernel_space.spec import DEFAULT_SMEM_LIMIT
from storage.table import PLAN_ARM, DispatchTable, OpEntry, load_table

# Decode attention's combine folded into o_proj at batch 1 (kernel_space.combine_o_proj): "auto" (the
# default: at the batches the table lists, its step check's verdict; without a table, never), "on" (at
# every batch-1 decode step, the unfused baseline's too) or "off". Measured on an H200 (benchmarks/README.md,
# thirty-first session): 0.6B batch 1 +2-5%, 1.7B within 1%, so a measured choice, like the stream.
FOLD_ENV = "KERNEL_SEARCH_FOLD"
FOLD_VALUES = ("auto", "on", "off")


def fold_setting() -> str:
    value = os.environ.get(FOLD_ENV, "auto")
    if value not in FOLD_VALUES:
        raise ValueError(f"{FOLD_ENV} must be one of {', '.join(FOLD_VALUES)}, got {value!r}")
    return value


def widened(stream: torch.Tensor, w: torch.Tensor) -> bool:
    """Whether the residual stream is kept in fp32 or fixed point (int64) under 16-bit weights
    (qwen3.model.STREAM_ENV): the residual sites then add into it in place."""
    return stream.dtype in STREAM_DTYPES and w.dtype != torch.float32


DTYPE_NAMES = {torch.bfloat16: "bfloat16", torch.float16: "float16", torch.float32: "float32"}
ELEM_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


@dataclass(frozen=True)
class Choice:
    """What one op runs at one M: the arm, the config handed to the launcher, and why."""

    arm: str  # "fused" or "unfused"; decode attention also "plan" (its default plan, config {})
    config: dict = field(default_factory=lambda: {"impl": "unfused"})
    reason: str = ""  # for a fused choice the table bucket it came from, else why the baseline runs


class Dispatcher:
    """Picks fused or unfused per op and M from a dispatch table, and runs it.

    table: None (the unfused baseline everywhere), a path to a table's JSON file, a decoded dict,
    or a storage.table.DispatchTable (what storage.export.build_table returns). A malformed table
    raises storage.table.TableError naming the field.
    device: the GPU whose fingerprint the table is checked against (default: the current one).

    A table measured on other hardware loads with one warning; an op whose kernel source changed
    since tuning (kernel_hash differs) runs the baseline, with one warning per op.
    """

    def __init__(self, table: DispatchTable | dict | str | Path | None = None, *, device=None):
        if table is not None and not isinstance(table, DispatchTable):
            table = load_table(table)
        self.table: DispatchTable | None = table
        self.device = torch.device(device) if device is not None else None
        self._cache: dict[tuple, Choice] = {}
        self._warned: set[str] = set()
        self._blocked: dict[str, str] = {}  # op -> why the whole op runs the baseline
        self._bad_buckets: dict[tuple[str, int], str] = {}  # (op, bucket m) -> why its config is refused
        # Greedy decoding's argmax in lm_head's epilogue (lm_head_greedy): off unless
        # KERNEL_SEARCH_FUSED_ARGMAX=1. Measured on an H100 (eighteenth session) against the argmax of the
        # logits in the same graph: 0.6B batch 1, 8, 32 +0.4%, +0.5%, -0.7%; 8B batch 1 and 32 0.0%, -0.2%.
        self.fuse_argmax = os.environ.get("KERNEL_SEARCH_FUSED_ARGMAX", "0") == "1"
        if table is not None:
            self._check_table(table)

    # -- checks done once, when the table is loaded ------------------------------------------------

    def _check_table(self, table: DispatchTable) -> None:
        index = self.device.index if self.device is not None and self.device.type == "cuda" else None
        here = current_fingerprint(index)
        if not same_hardware(table.fingerprint, here):
            self._warn("hardware", f"dispatch table was tuned on {_describe(table.fingerprint)}, this is "
                                   f"{_describe(here)}: its choices are served as they are, but its timings may "
                                   f"not hold here (re-tune with `kernel-search tune` for this GPU)")
        for op, entry in table.ops.items():
            if op not in ALL_OPS:
                self._warn(f"unknown:{op}", f"dispatch table has an op {op!r} this version does not know; ignored")
                continue
            fallback = _FALLBACK[op == ATTENTION_OP]
            if entry.kernel_hash != kernel_hash(op):
                self._blocked[op] = "kernel source changed since tuning"
                self._warn(f"hash:{op}", f"dispatch table's kernel hash for {op} ({entry.kernel_hash}) differs from "
                                         f"this code's ({kernel_hash(op)}): {op} runs {fallback}")
                continue
            spec = get_op(op)
            smem = _smem_limit(self.device)
            for b in entry.buckets:
                if b.arm != "fused":
                    continue
                why = spec.check(b.config, b.m, entry.n, entry.k, ELEM_BYTES[table.dtype], smem)
                if why:
                    where = describe(op, b.m) if op == ATTENTION_OP else f"m={b.m}"
                    self._bad_buckets[(op, b.m)] = why
                    self._warn(f"config:{op}:{b.m}", f"dispatch table's {op} config at {where} cannot run here "
                                                     f"({why}): that bucket runs {fallback}")

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    # -- resolving ---------------------------------------------------------------------------------

    def choose(self, op: str, m: int, n: int | None = None, k: int | None = None,
               dtype: torch.dtype | None = None, device_type: str | None = None) -> Choice:
        """The Choice for op at M tokens. n, k (the weight's shape), dtype and device_type, when
        given, are checked against what the table was tuned for; a mismatch means the baseline."""
        key = (op, m, n, k, dtype, device_type)
        choice = self._cache.get(key)
        if choice is None:
            choice = self._cache[key] = self._choose(*key)
        return choice

    def _choose(self, op, m, n, k, dtype, device_type) -> Choice:
        get_op(op)  # ValueError for an unknown op, listing the known ones
        if op == ATTENTION_OP:
            raise ValueError("decode_attention is looked up by batch and context: use choose_attention")
        if m < 1:
            raise ValueError(f"M must be >= 1, got {m}")
        if self.table is None:
            return Choice("unfused", reason="no dispatch table")
        entry = self.table.ops.get(op)
        if entry is None:
            return Choice("unfused", reason="op not in the dispatch table")
        if op in self._blocked:
            return Choice("unfused", reason=self._blocked[op])
        return self._mismatch(op, entry, n, k, dtype) or self._from_bucket(op, entry, m, device_type)

    def _mismatch(self, op, entry: OpEntry, n, k, dtype) -> Choice | None:
        """The baseline, with a warning, when the model's weight shape or dtype is not what was tuned."""
        if (n is not None and n != entry.n) or (k is not None and k != entry.k):
            self._warn(f"shape:{op}:{n}x{k}", f"{op} weight is {n}x{k} but the dispatch table was tuned for "
                                              f"{entry.n}x{entry.k}: {op} runs the unfused baseline")
            return Choice("unfused", reason=f"table tuned for N, K = {entry.n}, {entry.k}")
        if dtype is not None and DTYPE_NAMES.get(dtype) != self.table.dtype:
            self._warn(f"dtype:{dtype}", f"the model runs {DTYPE_NAMES.get(dtype, dtype)} but the dispatch table was "
                                         f"tuned for {self.table.dtype}: every op runs the unfused baseline")
            return Choice("unfused", reason=f"table tuned for {self.table.dtype}")
        return None

    def _from_bucket(self, op, entry: OpEntry, m: int, device_type) -> Choice:
        """The choice of the bucket serving M (interval rule), or the baseline past the last bucket."""
        last = max(b.m for b in entry.buckets)
        if m > last:
            # DESIGN.md: a config never runs at an M beyond what it was tuned for (a decode config at a
            # prefill M ran 4x slower than unfused, and faulted before its offsets were 64-bit).
            self._warn(f"beyond:{op}", f"{op} runs at M={m}, past the dispatch table's last tuned bucket (M={last}): "
                                       f"it runs the unfused path there (tune larger buckets, e.g. `kernel-search "
                                       f"tune --buckets prefill`, to cover it)")
            return Choice("unfused", reason=f"M={m} is past the last tuned bucket (M={last})")
        bucket = entry.lookup(m)
        if bucket.arm != "fused":
            return Choice("unfused", reason=f"table bucket m={bucket.m} picked unfused")
        refused = self._bad_buckets.get((op, bucket.m))
        if refused:
            return Choice("unfused", reason=f"table config at m={bucket.m} refused: {refused}")
        if device_type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
            self._warn("cpu", "fused kernels need a GPU (or TRITON_INTERPRET=1 on the CPU): running the baseline")
            return Choice("unfused", reason="CPU without Triton's interpreter")
        # Only the search space's keys reach the launcher: whatever else a table carries stays behind.
        config = {key: bucket.config[key] for key in get_op(op).space.values if key in bucket.config}
        return Choice("fused", config, reason=f"table bucket m={bucket.m}, {bucket.speedup:.2f}x vs unfused")

    # -- decode attention ----------------------------------------------------------------------------

    def choose_attention(self, problem: AttentionProblem) -> Choice:
        """What decode attention runs for a problem (batch, cache slots, head geometry, dtype): the
        table's bucket (arm "fused" with its config, or "unfused": SDPA won there), or arm "plan", the
        default plan, wherever the table has nothing that serves it (see the module docstring)."""
        key = (ATTENTION_OP, problem)
        choice = self._cache.get(key)
        if choice is None:
            choice = self._cache[key] = self._choose_attention(problem)
        return choice

    def attention_config(self, problem: AttentionProblem) -> dict | None:
        """The config for decode_attention's launcher (None: the default plan): the model's attention
        layers call this (Qwen3ForCausalLM wires it in) as they launch or are captured."""
        choice = self.choose_attention(problem)
        return None if choice.arm == "plan" else choice.config

    def _choose_attention(self, p: AttentionProblem) -> Choice:
        entry = self.table.ops.get(ATTENTION_OP) if self.table is not None else None
        if entry is None:
            return Choice("plan", {}, "no decode_attention in the dispatch table")
        if ATTENTION_OP in self._blocked:
            return Choice("plan", {}, self._blocked[ATTENTION_OP])
        shape = encode_heads(p.heads, p.kv_heads, p.head_dim)
        if shape != (entry.n, entry.k):
            self._warn(f"shape:{ATTENTION_OP}:{shape}", f"decode_attention has {p.heads} heads over {p.kv_heads} KV "
                                                        f"heads of {p.head_dim}, but the dispatch table was tuned "
                                                        f"for N, K = {entry.n}, {entry.k}: it runs its default plan")
            return Choice("plan", {}, f"table tuned for N, K = {entry.n}, {entry.k}")
        if p.dtype != self.table.dtype:
            self._warn(f"dtype:{ATTENTION_OP}", f"decode attention runs {p.dtype} but the dispatch table was tuned "
                                                f"for {self.table.dtype}: it runs its default plan")
            return Choice("plan", {}, f"table tuned for {self.table.dtype}")
        bucket, why = entry.attention_lookup(p.batch, p.context)
        if bucket is None:
            self._warn(f"beyond:{ATTENTION_OP}", f"decode_attention runs at batch {p.batch} over a cache of "
                                                 f"{p.context} slots: {why} in the dispatch table; it runs its "
                                                 "default plan there (tune that batch and context to cover it, "
                                                 "`kernel-search tune --op decode_attention --contexts ...`)")
            return Choice("plan", {}, why)
        where = describe(ATTENTION_OP, bucket.m)
        if bucket.arm == PLAN_ARM:
            return Choice("plan", {}, f"table bucket {where}: the default plan (the step check found it faster)")
        if bucket.arm != "fused":
            return Choice("unfused", {"impl": "unfused"}, f"table bucket {where} picked unfused (SDPA)")
        refused = self._bad_buckets.get((ATTENTION_OP, bucket.m))
        if refused:
            return Choice("plan", {}, f"table config at {where} refused: {refused}")
        config = {key: bucket.config[key] for key in get_op(ATTENTION_OP).space.values if key in bucket.config}
        return Choice("fused", config, reason=f"table bucket {where}, {bucket.speedup:.2f}x vs unfused")

    def resolve(self, op: str, m: int) -> tuple[str, dict]:
        """(arm, config) that op runs at M tokens, by the table alone (no shape or dtype check)."""
        choice = self.choose(op, m)
        return choice.arm, choice.config

    def plan(self, m: int, shapes: dict[str, tuple[int, int]] | None = None,
             dtype: torch.dtype | None = None, device_type: str | None = None) -> dict[str, Choice]:
        """The Choice of every op at M tokens, e.g. before CUDA-graph capture. shapes: the model's
        (N, K) per op (kernel_space.op_shapes), so the plan is exactly what the calls will run."""
        shapes = shapes or {}
        return {op: self.choose(op, m, *shapes.get(op, (None, None)), dtype, device_type) for op in OPS}

    def _run(self, op: str, x: torch.Tensor, w: torch.Tensor) -> Choice:
        # The weight's dtype: a norm op's x may be the model's fp32 residual stream.
        return self.choose(op, x.shape[0], w.shape[0], w.shape[1], w.dtype, x.device.type)

    # -- the fusion sites --------------------------------------------------------------------------

    def rmsnorm_qkv(self, h, norm_w, w, eps: float):
        """qkv = rmsnorm(h) @ w^T."""
        choice = self._run("rmsnorm_qkv", h, w)
        if choice.arm == "fused":
            return rmsnorm_qkv(h, norm_w, w, choice.config, eps)
        if prefill.serves(h.shape[0], h):
            return prefill.rmsnorm_linear(h, norm_w, w, eps)
        return rmsnorm_qkv_unfused(h, norm_w, w, eps)

    def folds(self, rows: int) -> bool:
        """Whether a decode step of `rows` sequences leaves decode attention's combine to o_proj (FOLD_ENV:
        by default where the table says so; the fold's kernel takes batch 1 only)."""
        value = fold_setting()
        if rows != 1 or value == "off":
            return False
        return value == "on" or (self.table is not None and self.table.folds_at(rows))

    def o_proj_residual(self, x, residual, w):
        """residual + x @ w^T; where residual is a wider stream than the weights (fp32 or fixed point:
        qwen3.model.STREAM_ENV), added into it in place. x may be decode attention's uncombined
        SplitPartials (folds): kernel_space.combine_o_proj combines them inside its o_proj."""
        accumulate = widened(residual, w)
        if isinstance(x, SplitPartials):
            return o_proj_residual_combined(x, residual, w, accumulate)
        choice = self._run("o_proj_residual", x, w)
        if choice.arm == "fused":
            return o_proj_residual(x, residual, w, choice.config, accumulate)
        if accumulate:
            return o_proj_residual_unfused(x, residual, w, accumulate)
        if prefill.serves(x.shape[0], x):
            return prefill.residual_linear(x, residual, w)
        return o_proj_residual_unfused(x, residual, w)

    def rmsnorm_gate_up_silu(self, x, norm_w, w, eps: float):
        """silu(g) * u with g, u = rmsnorm(x) @ w^T split in halves (gate rows first)."""
        choice = self._run("rmsnorm_gate_up_silu", x, w)
        if choice.arm == "fused":
            return rmsnorm_gate_up_silu(x, norm_w, w, choice.config, eps)
        if prefill.serves(x.shape[0], x):
            return prefill.rmsnorm_gate_up_silu(x, norm_w, w, eps)
        return rmsnorm_gate_up_silu_unfused(x, norm_w, w, eps)

    def down_residual(self, x, residual, w):
        """residual + x @ w^T (the MLP's down projection); in place where residual is a wider stream, as
        o_proj_residual."""
        choice = self._run("down_residual", x, w)
        accumulate = widened(residual, w)
        if choice.arm == "fused":
            return down_residual(x, residual, w, choice.config, accumulate)
        if accumulate:
            return down_residual_unfused(x, residual, w, accumulate)
        if prefill.serves(x.shape[0], x):
            return prefill.residual_linear(x, residual, w)
        return down_residual_unfused(x, residual, w)

    def lm_head(self, h, norm_w, w, eps: float):
        """logits = rmsnorm(h) @ w^T (the final norm and the LM head)."""
        choice = self._run("lm_head", h, w)
        if choice.arm == "fused":
            return lm_head(h, norm_w, w, choice.config, eps)
        if prefill.serves(h.shape[0], h):
            return prefill.rmsnorm_linear(h, norm_w, w, eps)
        return lm_head_unfused(h, norm_w, w, eps)

    def fuses_argmax(self, m: int, n: int, k: int, dtype, device_type: str) -> bool:
        """Whether lm_head_greedy at M rows runs the fused argmax (fuse_argmax on, lm_head fused there)."""
        return self.fuse_argmax and self.choose("lm_head", m, n, k, dtype, device_type).arm == "fused"

    def lm_head_greedy(self, h, norm_w, w, eps: float):
        """Each row's greedy token, [M] int64: lm_head's fused config with the argmax in its epilogue
        where the table fuses lm_head at this M and fuse_argmax is on (KERNEL_SEARCH_FUSED_ARGMAX=1; off by
        default: it measured within noise of the argmax of the logits), else the argmax of lm_head's logits."""
        choice = self._run("lm_head", h, w)
        if choice.arm == "fused" and self.fuse_argmax:
            return lm_head_argmax(h, norm_w, w, choice.config, eps)
        return self.lm_head(h, norm_w, w, eps).argmax(-1)

    def __repr__(self) -> str:
        if self.table is None:
            return "Dispatcher(no table: unfused baseline)"
        fused = sum(b.arm == "fused" for e in self.table.ops.values() for b in e.buckets)
        return (f"Dispatcher({self.table.model}, {self.table.dtype}, {self.table.fingerprint['device_name']}, "
                f"{len(self.table.ops)} ops, {fused} fused buckets)")


# What an op runs where its table entry cannot serve: the unfused baseline, or decode attention's plan.
_FALLBACK = {False: "the unfused baseline", True: "its default plan"}


def _describe(fp: dict) -> str:
    return f"{fp['device_name']} ({fp['sm_count']} SMs, capability {'.'.join(map(str, fp['capability']))})"


def _smem_limit(device: torch.device | None) -> int:
    if torch.cuda.is_available() and (device is None or device.type == "cuda"):
        return torch.cuda.get_device_properties(device or torch.cuda.current_device()).shared_memory_per_block_optin
    return DEFAULT_SMEM_LIMIT
