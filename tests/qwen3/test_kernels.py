"""The attention block's kernels as the runtime calls them (kernel_space.qk_norm_rope_cache,
kernel_space.decode_attention) against the PyTorch path of qwen3.layers, under Triton's interpreter on
the CPU (on a GPU when there is one). The op's own tests: tests/kernel_space/test_decode_attention.py."""

import dataclasses

import pytest
import torch

from kernel_space.decode_attention import attention_plan, decode_attention
from kernel_space.qk_norm_rope_cache import qk_norm_rope_cache
from qwen3.generate import Generator
from qwen3.layers import Attention, QKNormRopeCache, RMSNorm, RotaryEmbedding
from qwen3.loader import random_weights
from tests.qwen3.helpers import TINY

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
PREP_TOL = {torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 2e-2 if DEVICE == "cuda" else 1e-1}


def parts(heads, kv_heads, hd, dtype, rows, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    q_norm, k_norm = RMSNorm(hd, 1e-6), RMSNorm(hd, 1e-6)
    q_norm.weight.data = (1 + 0.2 * torch.randn(hd, generator=g)).to(DEVICE, dtype)
    k_norm.weight.data = (1 + 0.2 * torch.randn(hd, generator=g)).to(DEVICE, dtype)
    rotary = RotaryEmbedding(hd, length, 10_000.0).to(DEVICE)
    attn = Attention(heads, kv_heads, hd)
    cache = (rows, length, kv_heads, hd)
    attn.k_cache = torch.randn(cache, generator=g).to(DEVICE, dtype)
    attn.v_cache = torch.randn(cache, generator=g).to(DEVICE, dtype)
    return q_norm, k_norm, rotary, attn


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("b", "t", "first_row"), [(3, 1, 0), (2, 5, 1), (3, 37, 1)])
def test_qk_norm_rope_cache_equals_the_pytorch_ops(dtype, b, t, first_row):
    """Decode (t = 1: a program per token and head) and prompts (blocks of ROWS_PER_PROGRAM tokens a
    program: 10 tokens in one block, 111 across four, the last one partly empty)."""
    heads, kv_heads, hd, length = 4, 2, 16, max(24, t + 3)
    q_norm, k_norm, rotary, attn = parts(heads, kv_heads, hd, dtype, rows=4, length=length)
    g = torch.Generator().manual_seed(1)
    qkv = (3 * torch.randn(b * t, (heads + 2 * kv_heads) * hd, generator=g)).to(DEVICE, dtype)
    positions = torch.stack([torch.randperm(length, generator=g)[:t] for _ in range(b)]).to(DEVICE)
    prep = QKNormRopeCache(heads, kv_heads, hd, 1e-6)
    ref_cache = attn.k_cache.clone(), attn.v_cache.clone()
    prep.impl = "torch"
    ref_attn = Attention(heads, kv_heads, hd)
    ref_attn.k_cache, ref_attn.v_cache = ref_cache
    ref_q = prep(qkv, q_norm, k_norm, rotary, positions, ref_attn, first_row)
    prep.impl = "triton"
    q = prep(qkv, q_norm, k_norm, rotary, positions, attn, first_row)
    assert q.shape == (b, t, heads, hd) and q.dtype == dtype
    # Same rounding steps as the PyTorch ops: equal up to the order of the fp32 sum of squares, and
    # for bf16 on the interpreter, its casts (they truncate; the GPU rounds to nearest).
    tol = PREP_TOL[dtype]
    torch.testing.assert_close(q, ref_q, atol=tol, rtol=tol)
    torch.testing.assert_close(attn.k_cache, ref_attn.k_cache, atol=tol, rtol=tol)
    assert torch.equal(attn.v_cache, ref_attn.v_cache)
    # Only the given (row, position) slots were written.
    written = torch.zeros(attn.k_cache.shape[:2], dtype=torch.bool, device=DEVICE)
    written[torch.arange(first_row, first_row + b, device=DEVICE)[:, None], positions] = True
    assert torch.equal(attn.k_cache[~written], ref_cache[0][~written])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("heads", "kv_heads", "hd", "length"),
                         [(4, 2, 16, 70), (8, 2, 32, 300), (3, 3, 16, 130), (16, 2, 64, 300)])
def test_decode_attention_equals_sdpa_over_the_cache(dtype, heads, kv_heads, hd, length):
    """One chunk of the cache (70 slots) and several (130, 300: partials and the combine kernel),
    positions at chunk and block edges, slots past a position full of NaN."""
    if dtype == torch.bfloat16 and DEVICE == "cpu":
        pytest.skip("the interpreter's tl.dot has no bf16 (the GEMM tests run fp32 and fp16 on the CPU too)")
    rows, first_row = 7, 1
    _, _, _, attn = parts(heads, kv_heads, hd, dtype, rows, length, seed=2)
    positions = torch.tensor([[0], [length - 1], [63], [64], [127], [128]], device=DEVICE).clamp(max=length - 1)
    q = torch.randn(6, 1, heads, hd, generator=torch.Generator().manual_seed(3)).to(DEVICE, dtype)
    attn.impl = "torch"
    ref = attn(q, positions, first_row)
    # Slots past a sequence's position hold garbage that must not leak in (SDPA's masked NaNs would).
    for i, p in enumerate(positions[:, 0].tolist()):
        attn.k_cache[first_row + i, p + 1:] = float("nan")
        attn.v_cache[first_row + i, p + 1:] = float("nan")
    tol = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}[dtype]
    # The planned launch (several chunks at these sizes), then the whole cache as one chunk (no combine).
    unsplit = {"impl": "fused", "SPLITS": 1, "BLOCK_N": 64, "pack": "group", "combine": "kernel", "num_warps": 4,
               "num_stages": 2}
    for config in (None, unsplit):
        out = decode_attention(q, attn.k_cache, attn.v_cache, positions, attn.scale, first_row, config)
        assert out.shape == (6, 1, heads * hd) and not out.isnan().any()
        torch.testing.assert_close(out, ref, atol=tol, rtol=tol)


def test_kernel_input_errors():
    _, _, rotary, attn = parts(4, 2, 16, torch.float32, rows=2, length=8)
    q = torch.zeros(2, 2, 4, 16, device=DEVICE)
    positions = torch.zeros(2, 1, dtype=torch.long, device=DEVICE)
    with pytest.raises(ValueError, match="one token per sequence"):
        decode_attention(q, attn.k_cache, attn.v_cache, torch.zeros(2, 2, dtype=torch.long, device=DEVICE), 0.25)
    with pytest.raises(ValueError, match="query heads do not split"):
        decode_attention(torch.zeros(2, 1, 3, 16, device=DEVICE), attn.k_cache, attn.v_cache, positions, 0.25)
    w = torch.ones(16, device=DEVICE)
    with pytest.raises(ValueError, match="qkv must be"):
        qk_norm_rope_cache(torch.zeros(2, 100, device=DEVICE), w, w, rotary.cos, rotary.sin, positions,
                           attn.k_cache, attn.v_cache, 4, 2, 1e-6)


def test_qk_norm_rope_cache_touches_nothing_outside_the_cache():
    heads, kv_heads, hd, length = 4, 2, 16, 24
    q_norm, k_norm, rotary, attn = parts(heads, kv_heads, hd, torch.float32, rows=3, length=length)
    qkv = torch.randn(3, (heads + 2 * kv_heads) * hd, generator=torch.Generator().manual_seed(5)).to(DEVICE)
    # Rows 0 and 2 point past the cache (and the RoPE table): they write no K/V; row 1 is written.
    positions = torch.tensor([[length], [5], [-1]], device=DEVICE)
    before = attn.k_cache.clone(), attn.v_cache.clone()
    q = qk_norm_rope_cache(qkv, q_norm.weight, k_norm.weight, rotary.cos, rotary.sin, positions, attn.k_cache,
                           attn.v_cache, heads, kv_heads, 1e-6)
    assert torch.isfinite(q).all()
    for cache, old in zip((attn.k_cache, attn.v_cache), before, strict=True):
        changed = (cache != old).flatten(2).any(-1).nonzero().tolist()
        assert changed == [[1, 5]]
    with pytest.raises(ValueError, match="do not fit caches"):
        qk_norm_rope_cache(qkv, q_norm.weight, k_norm.weight, rotary.cos, rotary.sin, positions, attn.k_cache,
                           attn.v_cache, heads, kv_heads, 1e-6, first_row=1)


def test_the_prompt_kernel_touches_nothing_outside_the_cache():
    """The blocks-of-tokens kernel (t > 1) as the per-token one: a position past the cache writes nothing."""
    heads, kv_heads, hd, length = 4, 2, 16, 24
    q_norm, k_norm, rotary, attn = parts(heads, kv_heads, hd, torch.float32, rows=3, length=length)
    qkv = torch.randn(6, (heads + 2 * kv_heads) * hd, generator=torch.Generator().manual_seed(6)).to(DEVICE)
    positions = torch.tensor([[3, length], [-1, 7], [length + 5, 0]], device=DEVICE)
    before = attn.k_cache.clone(), attn.v_cache.clone()
    q = qk_norm_rope_cache(qkv, q_norm.weight, k_norm.weight, rotary.cos, rotary.sin, positions, attn.k_cache,
                           attn.v_cache, heads, kv_heads, 1e-6)
    assert q.shape == (3, 2, heads, hd) and torch.isfinite(q).all()
    for cache, old in zip((attn.k_cache, attn.v_cache), before, strict=True):
        changed = (cache != old).flatten(2).any(-1).nonzero().tolist()
        assert changed == [[0, 3], [1, 7], [2, 0]]


def test_model_logits_with_the_kernels_equal_the_pytorch_path():
    """Prefill (PyTorch attention, Triton cache write) and decode steps (both kernels), fp32."""
    config = dataclasses.replace(TINY, num_hidden_layers=2)
    model = random_weights(config, torch.float32, DEVICE, seed=3)
    prompts = [[5, 9, 1, 33], [7, 2, 8, 1]]
    out = {}
    for impl in ("torch", "triton"):
        model.set_attention_impl(impl)
        gen = Generator(model, max_batch=2, max_len=10, cuda_graphs=False)
        logits = [gen.prefill(prompts)]
        for step in range(3):
            logits.append(gen.decode_step(logits[-1].argmax(-1), torch.tensor([4 + step] * 2, device=DEVICE)))
        out[impl] = torch.stack(logits)
    torch.testing.assert_close(out["triton"], out["torch"], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="attention impl"):
        model.set_attention_impl("flash")


def _decode_logits(model, steps=3):
    gen = Generator(model, max_batch=2, max_len=10, cuda_graphs=False)
    logits = [gen.prefill([[5, 9, 1, 33], [7, 2, 8, 1]])]
    for step in range(steps):
        logits.append(gen.decode_step(logits[-1].argmax(-1), torch.tensor([4 + step] * 2, device=DEVICE)))
    return torch.stack(logits)


def test_model_takes_an_attention_config_override():
    """A fixed config, a function of the problem (what a tuned table will supply) and 'unfused' all
    give the default plan's logits; configs that cannot run are refused when set."""
    model = random_weights(dataclasses.replace(TINY, num_hidden_layers=2), torch.float32, DEVICE, seed=4)
    model.set_attention_impl("triton")
    planned = _decode_logits(model)
    asked = []

    def table(problem):
        asked.append(problem)
        return {"impl": "fused", "SPLITS": 3, "BLOCK_N": 16, "pack": "head", "combine": "last_program",
                "num_warps": 2, "num_stages": 1}

    overrides = ({**table(None), "pack": "group", "combine": "kernel"}, {**table(None), "prep": "fused"}, table,
                 lambda p: {"impl": "unfused"})
    for override in overrides:
        model.set_attention_config(override)
        torch.testing.assert_close(_decode_logits(model), planned, atol=1e-4, rtol=1e-4)
    problem = asked[-1]
    assert (problem.batch, problem.heads, problem.kv_heads, problem.head_dim, problem.context) == (2, 4, 2, 16, 10)
    with pytest.raises(ValueError, match="SPLITS=5 is not in the search space"):
        model.set_attention_config({**table(None), "SPLITS": 5})
    with pytest.raises(ValueError, match="must be None, a dict or a function"):
        model.set_attention_config("fast")


def test_prep_fused_decode_equals_separate_and_launches_no_qk_norm_rope_cache(monkeypatch):
    """With decode configs of prep fused a decode step launches no qk_norm_rope_cache (prefill still does,
    once a layer) and one decode_attention_prep a layer; its logits equal prep separate's (fp32)."""
    import qwen3.layers as layers

    model = random_weights(dataclasses.replace(TINY, num_hidden_layers=2), torch.float32, DEVICE, seed=4)
    model.set_attention_impl("triton")
    calls = []
    for name in ("qk_norm_rope_cache", "decode_attention", "decode_attention_prep"):
        real = getattr(layers, name)
        monkeypatch.setattr(layers, name, lambda *a, name=name, real=real: calls.append(name) or real(*a))
    logits = {}
    for prep in ("separate", "fused"):
        def decode_config(p, prep=prep):
            return {**attention_plan(p.batch, p.heads, p.kv_heads, p.head_dim, p.context, 132, p.elem_bytes,
                                     early=False),
                    "prep": prep}

        model.set_attention_config(decode_config)
        calls.clear()
        logits[prep] = _decode_logits(model)  # prefill, then 3 decode steps, 2 layers
        expected = ({"qk_norm_rope_cache": 8, "decode_attention": 6} if prep == "separate" else
                    {"qk_norm_rope_cache": 2, "decode_attention_prep": 6})
        assert {name: calls.count(name) for name in set(calls)} == expected
    torch.testing.assert_close(logits["fused"], logits["separate"], atol=1e-4, rtol=1e-4)
    model.set_attention_impl("torch")  # the PyTorch path ignores prep: the same logits again
    torch.testing.assert_close(_decode_logits(model), logits["separate"], atol=1e-4, rtol=1e-4)


def test_a_head_dim_the_kernels_cannot_take_runs_pytorch_attention():
    """head_dim 20 (like 80: not a power of two): said once when the model is built, PyTorch attention
    from then on, and impl 'triton' refused with the reason rather than failing inside a forward."""
    config = dataclasses.replace(TINY, num_hidden_layers=1, head_dim=20)
    with pytest.warns(UserWarning, match="head_dim 20 is not a power of two.*runs the PyTorch path"):
        model = random_weights(config, torch.float32, DEVICE, seed=5)
    model.set_attention_impl("auto")
    assert {m.impl for m in model.modules() if isinstance(m, (Attention, QKNormRopeCache))} == {"torch"}
    with pytest.raises(ValueError, match="impl 'triton' cannot serve test-tiny: head_dim 20 is not a power of two"):
        model.set_attention_impl("triton")
    assert _decode_logits(model, steps=1).isfinite().all()


def test_decode_keeps_its_kernel_and_a_prompt_runs_blocks(monkeypatch):
    """Decode (one token a sequence) runs the per-(token, head) kernel that the decode attention op's
    tuned rows were timed with (its kernel hash covers it); a prompt runs the blocks-of-tokens kernel."""
    import kernel_space.qk_norm_rope_cache as module

    launched = []

    class Recording:
        def __init__(self, kernel, name):
            self.kernel, self.name = kernel, name

        def __getitem__(self, grid):
            launched.append(self.name)
            return self.kernel[grid]

    for name in ("_qk_norm_rope_cache_kernel", "_qk_norm_rope_cache_rows_kernel"):
        monkeypatch.setattr(module, name, Recording(getattr(module, name), name))
    heads, kv_heads, hd = 4, 2, 16
    q_norm, k_norm, rotary, attn = parts(heads, kv_heads, hd, torch.float32, rows=2, length=24)
    for t in (1, 3):
        qkv = torch.randn(2 * t, (heads + 2 * kv_heads) * hd).to(DEVICE)
        positions = torch.arange(t, device=DEVICE).expand(2, t)
        qk_norm_rope_cache(qkv, q_norm.weight, k_norm.weight, rotary.cos, rotary.sin, positions, attn.k_cache,
                           attn.v_cache, heads, kv_heads, 1e-6)
    assert launched == ["_qk_norm_rope_cache_kernel", "_qk_norm_rope_cache_rows_kernel"]


@pytest.mark.parametrize("hd", [64, 256])
def test_the_prompt_kernel_at_other_head_dims(hd):
    """Blocks of prompt_rows(hd) tokens (32 at 64, 16 at 256): a prompt across two blocks against the
    PyTorch ops, GQA group 3."""
    from kernel_space.qk_norm_rope_cache import prompt_rows

    heads, kv_heads, b, t = 3, 1, 1, prompt_rows(hd) + 5
    q_norm, k_norm, rotary, attn = parts(heads, kv_heads, hd, torch.float32, rows=2, length=t + 4)
    g = torch.Generator().manual_seed(7)
    qkv = (3 * torch.randn(b * t, (heads + 2 * kv_heads) * hd, generator=g)).to(DEVICE)
    positions = torch.randperm(t + 4, generator=g)[:t].to(DEVICE)[None]
    ref_attn = Attention(heads, kv_heads, hd)
    ref_attn.k_cache, ref_attn.v_cache = attn.k_cache.clone(), attn.v_cache.clone()
    prep = QKNormRopeCache(heads, kv_heads, hd, 1e-6)
    prep.impl = "torch"
    ref_q = prep(qkv, q_norm, k_norm, rotary, positions, ref_attn, 1)
    prep.impl = "triton"
    q = prep(qkv, q_norm, k_norm, rotary, positions, attn, 1)
    torch.testing.assert_close(q, ref_q, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn.k_cache, ref_attn.k_cache, atol=1e-5, rtol=1e-5)
    assert torch.equal(attn.v_cache, ref_attn.v_cache)
