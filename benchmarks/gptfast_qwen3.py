"""The reference peer: a gpt-fast-style Qwen3 (static KV cache, torch.compile), what a user would pick
instead of kernel-search.

The whole model is plain PyTorch. The KV cache is preallocated for max batch x max context, so every
decode step has the same shapes and the step compiles once into one CUDA graph
(torch.compile(mode="reduce-overhead", fullgraph=True), with Inductor's coordinate-descent tuning of
its kernels, as gpt-fast sets it); decode attention runs over the whole static
cache under a mask of the slots written so far, as gpt-fast does. Prefill runs PyTorch's SDPA with
is_causal over the prompt (the flash backend on a GPU, GQA without copying K/V), eager or compiled per
prompt length. Greedy: the compiled step returns the next token ids, as gpt-fast samples inside it.

Weights come from the project's own model (qwen3.loader.random_weights, or a checkpoint through
qwen3.loader.load_model) and are shared, not copied: Peer.from_qwen3(model). The two models' logits
agree (tests/qwen3/test_gptfast_peer.py).

    python3 benchmarks/gptfast_qwen3.py --model qwen3-0.6b --batch 1 --context 2048   # one cell, GPU
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from qwen3.config import Qwen3Config

COMPILE_MODES = ("reduce-overhead", "max-autotune")
# "math": attention written out (scores, mask, fp32 softmax, weighted sum) for Inductor to fuse, as
# gpt-fast forces SDPA's math backend for decode; "sdpa": F.scaled_dot_product_attention picks a kernel.
DECODE_ATTENTION = ("math", "sdpa")


class RMSNorm(nn.Module):
    def __init__(self, weight: torch.Tensor, eps: float):
        super().__init__()
        self.weight, self.eps = nn.Parameter(weight, requires_grad=False), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Statistics in fp32, the result cast back before the gain, as transformers' Qwen3 rounds.
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


class KVCache(nn.Module):
    """K and V of every sequence, [batch, kv_heads, max_seq, head_dim]: a head's slots are contiguous."""

    def __init__(self, batch: int, max_seq: int, kv_heads: int, head_dim: int, dtype, device):
        super().__init__()
        shape = (batch, kv_heads, max_seq, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        # Written in place by the compiled step: fixed addresses let its CUDA graph keep them as they are.
        torch._dynamo.mark_static_address(self.k)
        torch._dynamo.mark_static_address(self.v)

    def update(self, pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rows: torch.Tensor | None = None):
        """Write k, v [b, kv_heads, T, hd] at slots pos [T] of cache rows `rows` [b] (None: all rows)."""
        if rows is None:
            self.k[:, :, pos] = k
            self.v[:, :, pos] = v
        else:  # index tensors on both sides of a slice: the indexed result is [b, T, kv_heads, hd]
            self.k[rows[:, None], :, pos[None, :]] = k.transpose(1, 2)
            self.v[rows[:, None], :, pos[None, :]] = v.transpose(1, 2)
        return self.k, self.v


class Attention(nn.Module):
    def __init__(self, c: Qwen3Config, wqkv, wo, q_norm, k_norm, decode_attention: str = "math"):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.wqkv = nn.Parameter(wqkv, requires_grad=False)  # q, k, v stacked by rows
        self.wo = nn.Parameter(wo, requires_grad=False)
        self.q_norm, self.k_norm = RMSNorm(q_norm, c.rms_norm_eps), RMSNorm(k_norm, c.rms_norm_eps)
        self.decode_attention = decode_attention
        self.kv_cache: KVCache | None = None

    def forward(self, x, rope, pos, mask, rows):
        """x [b, T, hidden]; rope (cos, sin) [T, hd]; pos [T]. mask None: a prefill from slot 0 (causal
        over the prompt, written into cache rows `rows`); else a decode step of every row, mask [S]."""
        b, t, _ = x.shape
        q_size, kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
        q, k, v = F.linear(x, self.wqkv).split([q_size, kv_size, kv_size], dim=-1)
        q = self.q_norm(q.view(b, t, self.heads, self.head_dim))
        k = self.k_norm(k.view(b, t, self.kv_heads, self.head_dim))
        q, k = apply_rope(q, rope), apply_rope(k, rope)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        keys, values = self.kv_cache.update(pos, k, v, rows)
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:
            y = self._decode(q, keys, values, mask)
        return F.linear(y.transpose(1, 2).reshape(b, t, q_size), self.wo)

    def _decode(self, q, keys, values, mask):
        """q [B, heads, 1, hd] over the whole cache [B, kv_heads, S, hd]. The query heads sharing a KV
        head become rows of one attention (head h reads KV head h // groups): no K/V is copied."""
        b, groups = q.shape[0], self.heads // self.kv_heads
        q = q.reshape(b, self.kv_heads, groups, self.head_dim)
        if self.decode_attention == "sdpa":
            y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        else:
            scores = (q @ keys.transpose(-1, -2)).float() * self.head_dim**-0.5
            probs = scores.masked_fill(~mask, float("-inf")).softmax(-1).to(q.dtype)
            y = probs @ values
        return y.reshape(b, self.heads, 1, self.head_dim)


class MLP(nn.Module):
    def __init__(self, w_gate_up: torch.Tensor, w_down: torch.Tensor):
        super().__init__()
        self.w_gate_up = nn.Parameter(w_gate_up, requires_grad=False)  # gate rows first, then up
        self.w_down = nn.Parameter(w_down, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = F.linear(x, self.w_gate_up).chunk(2, dim=-1)
        return F.linear(F.silu(gate) * up, self.w_down)


class Block(nn.Module):
    def __init__(self, attention: Attention, mlp: MLP, attention_norm: RMSNorm, mlp_norm: RMSNorm):
        super().__init__()
        self.attention, self.mlp, self.attention_norm, self.mlp_norm = attention, mlp, attention_norm, mlp_norm

    def forward(self, x, rope, pos, mask, rows):
        h = x + self.attention(self.attention_norm(x), rope, pos, mask, rows)
        return h + self.mlp(self.mlp_norm(h))


def apply_rope(x: torch.Tensor, rope) -> torch.Tensor:
    """Rotate-half RoPE of x [b, T, heads, hd] by (cos, sin) [T, hd] in x's dtype (as transformers)."""
    cos, sin = (t.to(x.dtype)[:, None, :] for t in rope)
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Peer(nn.Module):
    """Qwen3 for causal LM, gpt-fast style. setup_caches(batch, max_seq) before prefill / decode."""

    def __init__(self, config: Qwen3Config, embed: torch.Tensor, blocks: list[Block], norm: RMSNorm,
                 lm_head: torch.Tensor):
        super().__init__()
        self.config = config
        self.embed = nn.Parameter(embed, requires_grad=False)
        self.blocks = nn.ModuleList(blocks)
        self.norm = norm
        # Tied embeddings share one tensor: the parameter is the embedding's, not a copy.
        self.lm_head = self.embed if lm_head is embed else nn.Parameter(lm_head, requires_grad=False)

    @classmethod
    def from_qwen3(cls, model, decode_attention: str = "math") -> Peer:
        """A peer sharing the weights of a qwen3.model.Qwen3ForCausalLM (no copy). Where the model has
        folded its layers' norm gains into qkv_proj and gate_up_proj (it does when loaded), the peer's
        norms get unit gains: the same products, and the same work as gpt-fast's (the multiply stays)."""
        if decode_attention not in DECODE_ATTENTION:
            raise ValueError(f"decode_attention must be one of {DECODE_ATTENTION}, got {decode_attention!r}")
        c, eps = model.config, model.config.rms_norm_eps
        blocks = []
        for layer in model.model.layers:
            a, m = layer.self_attn, layer.mlp
            attention = Attention(c, a.qkv_proj.weight, a.o_proj.weight, a.q_norm.weight, a.k_norm.weight,
                                  decode_attention)
            gains = [norm.weight for norm in (layer.input_layernorm, layer.post_attention_layernorm)]
            if layer.gains_folded:
                gains = [torch.ones_like(g) for g in gains]
            blocks.append(Block(attention, MLP(m.gate_up_proj.weight, m.down_proj.weight),
                                RMSNorm(gains[0], eps), RMSNorm(gains[1], eps)))
        return cls(c, model.model.embed_tokens.weight, blocks, RMSNorm(model.model.norm.weight, eps),
                   model.lm_head.weight)

    def setup_caches(self, batch: int, max_seq: int) -> None:
        """A static KV cache of batch x max_seq in every block and RoPE tables for max_seq positions."""
        c, device, dtype = self.config, self.embed.device, self.embed.dtype
        if max_seq > c.max_position_embeddings:
            raise ValueError(f"max_seq {max_seq} exceeds max_position_embeddings {c.max_position_embeddings}")
        for block in self.blocks:
            block.attention.kv_cache = KVCache(batch, max_seq, c.num_key_value_heads, c.head_dim, dtype, device)
        inv_freq = 1.0 / c.rope_theta ** (torch.arange(0, c.head_dim, 2, device=device).float() / c.head_dim)
        angles = torch.arange(max_seq, device=device).float()[:, None] * inv_freq[None, :]
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)
        self.register_buffer("slots", torch.arange(max_seq, device=device), persistent=False)

    def free_caches(self) -> None:
        for block in self.blocks:
            block.attention.kv_cache = None
        self.cos = self.sin = self.slots = None

    def forward(self, ids: torch.Tensor, pos: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """ids [b, T] at slots pos [T] -> logits of the last token [b, vocab]. With rows [b]: a prefill
        from slot 0 into those cache rows; without: a decode step (T == 1) of every cache row."""
        if rows is None and ids.shape[1] != 1:
            raise ValueError(f"a decode step takes one token a sequence, got {ids.shape[1]} (pass rows to prefill)")
        mask = None if rows is not None else (self.slots <= pos)[None, None, None, :]
        rope = (self.cos[pos], self.sin[pos])
        x = F.embedding(ids, self.embed)
        for block in self.blocks:
            x = block(x, rope, pos, mask, rows)
        return F.linear(self.norm(x[:, -1]), self.lm_head)


def decode_one_token(model: Peer, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """ids [B, 1] at slot pos [1] -> the greedy next ids [B, 1]."""
    return model(ids, pos).argmax(-1, keepdim=True)


def prefill(model: Peer, ids: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Prompts ids [b, T] into cache rows `rows` [b] -> the greedy next ids [b, 1]."""
    return model(ids, torch.arange(ids.shape[1], device=ids.device), rows).argmax(-1, keepdim=True)


@dataclass(frozen=True, slots=True)
class PeerSettings:
    """How the peer is compiled. coordinate_descent: Inductor tunes the block sizes of the kernels it
    generates (gpt-fast turns it on); compile_prefill False runs the prefill eagerly."""

    mode: str = "reduce-overhead"
    compile_prefill: bool = True
    decode_attention: str = "math"
    coordinate_descent: bool = True

    def __post_init__(self):
        if self.mode not in COMPILE_MODES:
            raise ValueError(f"compile mode must be one of {COMPILE_MODES}, got {self.mode!r}")
        if self.decode_attention not in DECODE_ATTENTION:
            raise ValueError(f"decode_attention must be one of {DECODE_ATTENTION}, got {self.decode_attention!r}")


def compile_steps(settings: PeerSettings):
    """(decode, prefill): decode compiled with settings.mode, prefill compiled per prompt shape
    (dynamic=False) or eager."""
    decode = torch.compile(decode_one_token, mode=settings.mode, fullgraph=True, dynamic=False)
    pre = torch.compile(prefill, fullgraph=True, dynamic=False) if settings.compile_prefill else prefill
    return decode, pre


@torch.no_grad()
def timed_run(peer: Peer, decode, pre, chunks, context: int, output_len: int) -> tuple[float, float]:
    """(prefill ms, ms of output_len - 1 greedy decode steps); chunks: [(ids [b, T], rows [b])]."""
    start, mid, end = (torch.cuda.Event(enable_timing=True) for _ in range(3))
    pos = torch.tensor([context], device=chunks[0][0].device)
    torch.cuda.synchronize()
    start.record()
    tokens = torch.cat([pre(peer, ids, rows) for ids, rows in chunks])
    mid.record()
    for _ in range(output_len - 1):
        # A copy: the next replay of the CUDA graph rewrites its output (gpt-fast clones it too).
        tokens = decode(peer, tokens, pos).clone()
        pos += 1
    end.record()
    end.synchronize()
    return start.elapsed_time(mid), mid.elapsed_time(end)


def bench_peer(model, batch: int, context: int, output_len: int, repeats: int = 3, seed: int = 0,
               settings: PeerSettings = PeerSettings()) -> dict:
    """One cell of the peer on the weights of `model` (a qwen3 Qwen3ForCausalLM on CUDA), on the same
    prompts as qwen3.bench's arms: {"prefill_ms", "decode_ms", "decode_tok_s", "setup_s"} (setup_s: the
    warm-up run, compiling included). Frees its cache, graphs and compiled code before returning."""
    import torch._inductor.config

    from qwen3.bench import prefill_groups, random_prompts

    peer = Peer.from_qwen3(model, settings.decode_attention)
    try:
        peer.setup_caches(batch, context + output_len)
        decode, pre = compile_steps(settings)
        prompts = random_prompts(batch, context, model.config.vocab_size, seed, model.device)
        chunks = [(prompts[row:row + n], torch.arange(row, row + n, device=model.device))
                  for row, n in prefill_groups(batch, context)]
        # Compiling happens at the first calls, inside the warm-up run, so the config patch covers it.
        with torch._inductor.config.patch(coordinate_descent_tuning=settings.coordinate_descent):
            started = time.perf_counter()
            timed_run(peer, decode, pre, chunks, context, min(output_len, 4))  # compiles, records the graph
            setup_s = time.perf_counter() - started
            runs = [timed_run(peer, decode, pre, chunks, context, output_len) for _ in range(repeats)]
    finally:
        peer.free_caches()
        del peer
        release_compiled()
    step_ms = statistics.median(d for _, d in runs) / max(output_len - 1, 1)
    return {"prefill_ms": statistics.median(p for p, _ in runs), "decode_ms": step_ms,
            "decode_tok_s": batch * 1000 / step_ms, "setup_s": setup_s}


def release_compiled() -> None:
    """Drop compiled code and CUDA-graph pools (torch._dynamo.reset shuts the cudagraph trees down), then
    return the freed blocks to the driver so the next arm finds the memory."""
    torch._dynamo.reset()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def add_settings_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """The PeerSettings options (--{prefix}mode and so on), for this script and the matrix."""
    parser.add_argument(f"--{prefix}mode", choices=COMPILE_MODES, default="reduce-overhead",
                        help="torch.compile mode of the decode step")
    parser.add_argument(f"--{prefix}eager-prefill", action="store_true", help="run the prefill uncompiled")
    parser.add_argument(f"--{prefix}decode-attention", choices=DECODE_ATTENTION, default="math",
                        help="math: written out, fused by Inductor (gpt-fast); sdpa: F.scaled_dot_product_attention")
    parser.add_argument(f"--{prefix}no-coordinate-descent", action="store_true",
                        help="leave Inductor's kernel block sizes untuned (faster compile)")


def settings_from(args: argparse.Namespace, prefix: str = "") -> PeerSettings:
    get = lambda name: getattr(args, prefix.replace("-", "_") + name)
    return PeerSettings(get("mode"), not get("eager_prefill"), get("decode_attention"),
                        not get("no_coordinate_descent"))


def main() -> None:
    parser = argparse.ArgumentParser(description="One cell of the torch.compile peer (GPU).")
    parser.add_argument("--model", default="qwen3-0.6b")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--output-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    add_settings_arguments(parser)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("the peer's benchmark needs a CUDA GPU")
    from qwen3.config import resolve_model
    from qwen3.loader import random_weights

    model = random_weights(resolve_model(args.model), torch.bfloat16, "cuda")
    settings = settings_from(args)
    result = bench_peer(model, args.batch, args.context, args.output_len, args.repeats, settings=settings)
    print(json.dumps({"model": args.model, "batch": args.batch, "context": args.context, **asdict(settings),
                      **result}))


if __name__ == "__main__":
    main()
