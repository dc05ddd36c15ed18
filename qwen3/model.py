"""Qwen3 for causal LM, laid out as nano-vllm lays it out, with every fusion site calling the dispatcher.

A decoder layer is gpt-fast's two lines, h = x + attn(norm(x)) and out = h + mlp(norm(h)), where the
norm, the GEMM and the residual add of each half run as dispatcher ops:

    qkv     = ops.rmsnorm_qkv(x, input_norm, w_qkv)           # rmsnorm(x) @ Wqkv^T
    h       = ops.o_proj_residual(attn(qkv), x, w_o)          # x + o @ Wo^T
    act     = ops.rmsnorm_gate_up_silu(h, post_norm, w_gu)    # silu(g) * u of rmsnorm(h)
    out     = ops.down_residual(act, h, w_down)               # h + act @ Wd^T

The adds ride in the o_proj and down epilogues, so the stream leaves every layer whole and the
rmsnorm_qkv has no residual input of its own. That is transformers' Qwen3 exactly:
it too adds each sublayer's output to the stream in the model dtype, right after the projection.

With KERNEL_SEARCH_STREAM=fp32 or fixed (STREAM_ENV) a forward of fewer rows than the prefill path takes
(decode steps) keeps the stream wider than the weights instead, and by default a decode forward with a
dispatch table keeps it in fixed point where the table chose it for that batch (its step check's
verdict; a table without one: batch 1 only): the embedding is widened once, the norm
ops read the stream, and o_proj and down add into it in place, each split-K program with an atomic
(_gemm._accumulate), so no split is reduced. In fp32 the last bits of the sum depend on the order of
the adds: runs are not bit for bit the same. In fixed point (int64 in units of 2^-24) they are: integer
adds give one sum in any order. The forward returns the stream in fp32 either way.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import torch
from torch import nn

from kernel_space import fixed_point, prefill
from kernel_space._common import fold_gain
from kernel_space.decode_attention import AttentionProblem, SplitPartials, check_config, unsupported_reason
from qwen3.config import Qwen3Config
from qwen3.dispatch import Choice, Dispatcher
from qwen3.layers import Attention, Embedding, Linear, QKNormRopeCache, RMSNorm, RotaryEmbedding, use_triton
from storage.table import DispatchTable, default_stream


class Qwen3Attention(nn.Module):
    """x + o_proj(attention(rope(qk_norm(qkv_proj(rmsnorm(x)))))), over the KV cache."""

    def __init__(self, config: Qwen3Config, ops: Dispatcher, rotary: RotaryEmbedding):
        super().__init__()
        self.ops = ops
        self.num_heads, self.num_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim, self.eps = config.head_dim, config.rms_norm_eps
        self.q_size = self.num_heads * self.head_dim
        self.kv_size = self.num_kv_heads * self.head_dim
        self.qkv_proj = Linear(config.hidden_size, self.q_size + 2 * self.kv_size)
        self.o_proj = Linear(self.q_size, config.hidden_size)
        self.q_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
        self.k_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
        self.rotary_emb = rotary
        self.prep = QKNormRopeCache(self.num_heads, self.num_kv_heads, self.head_dim, config.rms_norm_eps)
        self.attn = Attention(self.num_heads, self.num_kv_heads, self.head_dim)

    def forward(self, x: torch.Tensor, norm_w: torch.Tensor | None, positions: torch.Tensor, first_row: int,
                from_start: bool = False) -> torch.Tensor:
        """x [B*T, hidden] -> the stream after attention, [B*T, hidden]. norm_w: the input norm's gain,
        or None where it is folded into qkv_proj's weight."""
        b, t = positions.shape
        qkv = self.ops.rmsnorm_qkv(x, norm_w, self.qkv_proj.weight, self.eps)
        # The attention may leave its combine to o_proj (SplitPartials); asked only where the model folds.
        fold = {"partials": True} if t == 1 and self.ops.folds(b) else {}
        if self.attn.fuses_prep(positions, qkv):  # decode attention norms, rotates and writes K/V itself
            o = self.attn(qkv, positions, first_row, prep=(self.q_norm, self.k_norm, self.rotary_emb, self.eps),
                          **fold)
        else:
            q = self.prep(qkv, self.q_norm, self.k_norm, self.rotary_emb, positions, self.attn, first_row)
            o = self.attn(q, positions, first_row, from_start, **fold)
        if isinstance(o, SplitPartials):
            return self.ops.o_proj_residual(o, x, self.o_proj.weight)
        return self.ops.o_proj_residual(o.view(b * t, self.q_size), x, self.o_proj.weight)


class Qwen3MLP(nn.Module):
    """h + down_proj(silu(gate_proj(rmsnorm(h))) * up_proj(rmsnorm(h))); gate and up merged, gate rows first."""

    def __init__(self, config: Qwen3Config, ops: Dispatcher):
        super().__init__()
        self.ops = ops
        self.eps = config.rms_norm_eps
        self.gate_up_proj = Linear(config.hidden_size, 2 * config.intermediate_size)
        self.down_proj = Linear(config.intermediate_size, config.hidden_size)

    def forward(self, h: torch.Tensor, norm_w: torch.Tensor | None) -> torch.Tensor:
        """norm_w: the post-attention norm's gain, or None where it is folded into gate_up_proj's weight."""
        act = self.ops.rmsnorm_gate_up_silu(h, norm_w, self.gate_up_proj.weight, self.eps)
        return self.ops.down_residual(act, h, self.down_proj.weight)


class Qwen3DecoderLayer(nn.Module):
    def __init__(self, config: Qwen3Config, ops: Dispatcher, rotary: RotaryEmbedding):
        super().__init__()
        self.self_attn = Qwen3Attention(config, ops, rotary)
        self.mlp = Qwen3MLP(config, ops)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.gains_folded = False  # see Qwen3ForCausalLM.fold_norm_gains

    def fold_norm_gains(self) -> None:
        """Multiply the two norms' gains into the weights they feed (qkv_proj's and gate_up_proj's
        columns): the norm sites then run without a gain. The norms keep their weights (the checkpoint's),
        unused from now on."""
        if self.gains_folded:
            return
        for linear, norm in ((self.self_attn.qkv_proj, self.input_layernorm),
                             (self.mlp.gate_up_proj, self.post_attention_layernorm)):
            linear.weight.data = fold_gain(linear.weight.data, norm.weight.data)
        self.gains_folded = True

    def forward(self, x: torch.Tensor, positions: torch.Tensor, first_row: int,
                from_start: bool = False) -> torch.Tensor:
        folded = self.gains_folded
        h = self.self_attn(x, None if folded else self.input_layernorm.weight, positions, first_row, from_start)
        return self.mlp(h, None if folded else self.post_attention_layernorm.weight)


# The residual stream's dtype in forwards of fewer than prefill.PREFILL_ROWS rows: "auto" (the default:
# with a dispatch table, the stream the table chose for that batch, storage.table.DispatchTable.stream_at:
# the end-to-end step check's verdict, or where the table has none, fixed point at batch 1 and the
# weights' dtype above; without a table the weights' dtype), "model" (the weights' dtype), "fp32" or
# "fixed" (int64 in units of 2^-24; see the module docstring). Measured on an H200 (benchmarks/README.md,
# twenty-ninth session), against the model dtype: fixed point +5.0% at 0.6B batch 1, +2.2% at 1.7B,
# +0.2% at 8B, and 16% slower at 0.6B batch 8; fp32 +6.8%, +2.9%, +1.5% at batch 1, but not bit for
# bit reproducible (so no table chooses it), and 6% slower at 0.6B batch 8.
STREAM_ENV = "KERNEL_SEARCH_STREAM"
STREAM_DTYPES = {"auto": None, "model": None, "fp32": torch.float32, "fixed": torch.int64}


def stream_dtype(x: torch.Tensor, tabled: bool = True, table: DispatchTable | None = None) -> torch.dtype | None:
    """The dtype a forward whose embedded tokens are x [rows, hidden] keeps its stream in, where wider
    than x's (STREAM_ENV), else None. tabled: the model runs a dispatch table (`table`, whose stream
    choice "auto" follows; None: the rule of tables without one); "auto" widens only then, so that the
    unfused baseline stays what a plain model runs."""
    value = os.environ.get(STREAM_ENV, "auto")
    if value not in STREAM_DTYPES:
        raise ValueError(f"{STREAM_ENV} must be one of {', '.join(STREAM_DTYPES)}, got {value!r}")
    if x.dtype == torch.float32 or x.shape[0] >= prefill.PREFILL_ROWS:
        return None
    if value == "auto":
        if not tabled:
            return None
        rows = x.shape[0]
        return STREAM_DTYPES[table.stream_at(rows) if table is not None else default_stream(rows)]
    return STREAM_DTYPES[value]


STREAM_NAMES = {None: "the model dtype", torch.int64: "fixed point", torch.float32: "fp32"}


def describe_streams(batches: list[int], table: DispatchTable | None, dtype: torch.dtype = torch.bfloat16) -> str:
    """One line on the residual stream a decode step at each of `batches` keeps with `table` (what `bench`
    prints under its table arm): e.g. "fixed point at batch 1; the model dtype at batch 8, 32", and
    where it comes from (the table's choice, the rule of tables without one, or STREAM_ENV)."""
    chosen: dict[str, list[int]] = {}
    for batch in sorted(batches):
        x = torch.empty(batch, 1, dtype=dtype, device="meta")
        chosen.setdefault(STREAM_NAMES[stream_dtype(x, table is not None, table)], []).append(batch)
    parts = "; ".join(f"{name} at batch {', '.join(map(str, found))}" for name, found in chosen.items())
    value = os.environ.get(STREAM_ENV, "auto")
    if value != "auto":
        why = f"{STREAM_ENV}={value}"
    elif table is None:
        why = "no table"
    else:
        why = "the table's choice" if table.stream else "a table without a choice: fixed point at batch 1"
    return f"{parts} ({why})"


class Qwen3Model(nn.Module):
    def __init__(self, config: Qwen3Config, ops: Dispatcher):
        super().__init__()
        # One table for all layers; a buffer, so it follows the model's device.
        rotary = RotaryEmbedding(config.head_dim, config.max_position_embeddings, config.rope_theta)
        self.embed_tokens = Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Qwen3DecoderLayer(config, ops, rotary) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, first_row: int = 0,
                from_start: bool = False) -> torch.Tensor:
        x = self.embed_tokens(input_ids).flatten(0, 1)
        table = self.layers[0].mlp.ops.table
        wide = stream_dtype(x, table is not None, table)
        if wide is not None:
            x = fixed_point.to_fixed(x) if wide == torch.int64 else x.float()
        for layer in self.layers:
            x = layer(x, positions, first_row, from_start)
        return fixed_point.stream_values(x) if wide == torch.int64 else x


def prompts_from_start(positions: torch.Tensor) -> bool:
    """Whether positions [B, T] are 0 .. T-1 in every row (one device sync)."""
    return bool((positions == torch.arange(positions.shape[1], device=positions.device)).all())


class Qwen3ForCausalLM(nn.Module):
    """The model: forward(input_ids, positions) -> hidden states (before the final norm), and
    compute_logits(hidden) -> logits. Runs the unfused baseline unless given a Dispatcher with a table."""

    def __init__(self, config: Qwen3Config, ops: Dispatcher | None = None):
        super().__init__()
        self.config = config
        self.ops = ops or Dispatcher()
        self.model = Qwen3Model(config, self.ops)
        self.lm_head = Linear(config.hidden_size, config.vocab_size)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.kv_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self._wire_attention(self.ops)
        # Head shapes the Triton attention kernels cannot take (head_dim 80, say) run PyTorch's path,
        # said once here rather than failing inside the first forward.
        self.attention_fallback = unsupported_reason(config.num_attention_heads, config.num_key_value_heads,
                                                     config.head_dim)
        if self.attention_fallback:
            warnings.warn(f"{config.name}: {self.attention_fallback}; attention runs the PyTorch path "
                          "(SDPA) instead of the Triton kernels", stacklevel=2)
            self.set_attention_impl("torch")

    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    def fold_norm_gains(self) -> None:
        """Fold every decoder layer's two RMSNorm gains into the weights they feed, once (the loaders do
        it): rmsnorm(x) * g @ W^T = rmsnorm(x) @ (W diag(g))^T, so rmsnorm_qkv and rmsnorm_gate_up_silu
        run with no gain to load or multiply, and their inline norm's K loop feeds the activation to the
        product as loaded. Measured on an H100 (benchmarks/README.md, eighteenth session). W diag(g) is
        rounded once to the model's dtype: within bf16's own error of the unfolded product. The final
        norm keeps its gain: its LM head is the embedding at 0.6B and 1.7B (tied), which a fold would change."""
        for layer in self.model.layers:
            layer.fold_norm_gains()

    @property
    def gains_folded(self) -> bool:
        return all(layer.gains_folded for layer in self.model.layers)

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    def set_dispatcher(self, ops: Dispatcher) -> None:
        """Run every fusion site through `ops` from now on, decode attention too where its table has
        decode_attention buckets (captured CUDA graphs keep the old one)."""
        self.ops = ops
        for module in self.modules():
            if isinstance(module, (Qwen3Attention, Qwen3MLP)):
                module.ops = ops
        self._wire_attention(ops)

    def _wire_attention(self, ops: Dispatcher) -> None:
        """Decode attention asks the dispatcher's table (attention_config) unless a config was set."""
        for module in self.modules():
            if isinstance(module, Attention):
                module.lookup = ops.attention_config

    def set_attention_impl(self, impl: str) -> None:
        """"auto" (default): q/k norm + RoPE + cache write and decode attention run as Triton kernels on
        CUDA and as PyTorch ops elsewhere; "triton" or "torch" force one (tests compare the two).
        Head shapes the kernels cannot take stay on "torch" (see attention_fallback)."""
        if impl not in ("auto", "triton", "torch"):
            raise ValueError(f"attention impl must be auto, triton or torch, got {impl!r}")
        if self.attention_fallback:
            if impl == "triton":
                raise ValueError(f"attention impl 'triton' cannot serve {self.config.name}: {self.attention_fallback}")
            impl = "torch"
        for module in self.modules():
            if isinstance(module, (QKNormRopeCache, Attention)):
                module.impl = impl

    def set_attention_config(self, config: dict | Callable[[AttentionProblem], dict | None] | None) -> None:
        """The decode attention kernel's config from now on: None (the dispatcher's table where it has
        decode_attention buckets, else kernel_space.decode_attention's attention_plan at every launch),
        one config of its SPACE, or a function of the AttentionProblem (batch, cache length, ...)
        returning a config or None (the plan). A config or function set here overrides the table. A
        config with impl "unfused" runs PyTorch's SDPA. CUDA graphs captured before keep the old choice."""
        if isinstance(config, dict):
            c = self.config
            problem = AttentionProblem(1, c.num_attention_heads, c.num_key_value_heads, c.head_dim,
                                       c.max_position_embeddings, str(self.dtype).removeprefix("torch."))
            reason = check_config(config, problem)
            if reason:
                raise ValueError(f"attention config {config}: {reason}")
        elif config is not None and not callable(config):
            raise ValueError(f"attention config must be None, a dict or a function, got {type(config).__name__}")
        for module in self.modules():
            if isinstance(module, Attention):
                module.config = config

    def allocate_kv_cache(self, batch: int, max_len: int) -> None:
        """K and V caches [layers, batch, max_len, kv_heads, head_dim] in the model's dtype and device."""
        c = self.config
        if max_len > c.max_position_embeddings:
            raise ValueError(f"max_len {max_len} exceeds max_position_embeddings {c.max_position_embeddings}")
        shape = (c.num_hidden_layers, batch, max_len, c.num_key_value_heads, c.head_dim)
        self.kv_cache = (torch.zeros(shape, dtype=self.dtype, device=self.device),
                         torch.zeros(shape, dtype=self.dtype, device=self.device))
        for i, layer in enumerate(self.model.layers):
            layer.self_attn.attn.k_cache = self.kv_cache[0][i]
            layer.self_attn.attn.v_cache = self.kv_cache[1][i]

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, first_row: int = 0,
                from_start: bool | None = None) -> torch.Tensor:
        """input_ids, positions [B, T] -> hidden [B*T, hidden] (fp32 where the stream is: STREAM_ENV).
        Sequence b is cache row first_row + b;
        a token at position p writes cache slot p and attends slots 0..p.

        from_start: True when every row's positions are 0 .. T-1 (whole prompts): attention then runs
        SDPA's causal flash path over the first T slots instead of a masked pass over the whole cache.
        None finds out when T > 1 (one device sync: pass it where there must be none, as in a CUDA
        graph's capture); False always takes the general path."""
        if from_start is None:
            from_start = positions.shape[1] > 1 and prompts_from_start(positions)
        return self.model(input_ids, positions, first_row, from_start)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final norm and LM head: hidden [N, hidden] -> logits [N, vocab] in the model dtype."""
        norm = self.model.norm
        return self.ops.lm_head(hidden, norm.weight, self.lm_head.weight, norm.eps)

    def compute_greedy(self, hidden: torch.Tensor) -> torch.Tensor:
        """compute_logits' argmax per row, [N] int64: with the argmax in lm_head's epilogue where the
        dispatcher fuses it (Dispatcher.lm_head_greedy), so the logits are never written."""
        norm = self.model.norm
        return self.ops.lm_head_greedy(hidden, norm.weight, self.lm_head.weight, norm.eps)

    def fuses_argmax(self, m: int) -> bool:
        """Whether compute_greedy at M rows runs the fused argmax (a greedy graph of its own is then worth it)."""
        n, k = self.lm_head.weight.shape
        return self.ops.fuses_argmax(m, n, k, self.dtype, self.device.type)

    def op_shapes(self) -> dict[str, tuple[int, int]]:
        """(N, K) of every fusion site's weight, for Dispatcher.plan."""
        attn, mlp = self.model.layers[0].self_attn, self.model.layers[0].mlp
        weights = {"rmsnorm_qkv": attn.qkv_proj, "o_proj_residual": attn.o_proj,
                   "rmsnorm_gate_up_silu": mlp.gate_up_proj, "down_residual": mlp.down_proj, "lm_head": self.lm_head}
        return {op: tuple(lin.weight.shape) for op, lin in weights.items()}

    def plan(self, m: int) -> dict:
        """What every fusion site runs at M tokens: {op: qwen3.dispatch.Choice}."""
        return self.ops.plan(m, self.op_shapes(), self.dtype, self.device.type)

    def attention_choice(self, batch: int) -> Choice:
        """What decode attention runs at `batch` sequences over the allocated KV cache: the config set by
        set_attention_config, else the dispatcher's choice (Dispatcher.choose_attention); a Choice of arm
        "plan" is the default plan. Head shapes the kernel cannot take run SDPA (attention_fallback)."""
        attn = self.model.layers[0].self_attn.attn
        attn.check_cache()
        if not use_triton(attn.impl, attn.k_cache):
            why = self.attention_fallback or f"attention impl {attn.impl!r} on {attn.k_cache.device.type}"
            return Choice("unfused", {"impl": "unfused"}, f"PyTorch's SDPA: {why}")
        if attn.config is None:
            return self.ops.choose_attention(attn.problem(batch))
        config = attn.decode_config(batch)
        if config is None:
            return Choice("plan", {}, "set_attention_config")
        return Choice("unfused" if config.get("impl") == "unfused" else "fused", dict(config), "set_attention_config")
