"""Whole prompts take SDPA's causal path over the first T cache slots; it must give what the masked
pass over the whole cache gives (fp32, CPU), and other positions must keep the masked pass."""

import dataclasses

import pytest
import torch

from qwen3.layers import Attention
from qwen3.loader import random_weights
from qwen3.model import prompts_from_start
from tests.qwen3.helpers import TINY


@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (4, 2), (7, 1)])
@pytest.mark.parametrize("first_row", [0, 2])
def test_causal_path_matches_the_masked_pass(heads, kv_heads, first_row):
    gen = torch.Generator().manual_seed(heads * 10 + kv_heads + first_row)
    b, t, hd, cache_len = 2, 17, 16, 40
    attn = Attention(heads, kv_heads, hd)
    attn.impl = "torch"
    attn.k_cache = torch.randn(first_row + b, cache_len, kv_heads, hd, generator=gen)
    attn.v_cache = torch.randn(first_row + b, cache_len, kv_heads, hd, generator=gen)
    q = torch.randn(b, t, heads, hd, generator=gen)
    positions = torch.arange(t).expand(b, t)
    fast = attn(q, positions, first_row, from_start=True)
    masked = attn(q, positions, first_row, from_start=False)
    assert fast.shape == masked.shape == (b, t, heads * hd)
    torch.testing.assert_close(fast, masked, rtol=1e-5, atol=1e-5)
    # The slots past the prompt hold garbage the causal path must never read.
    attn.k_cache[:, t:] = float("nan")
    attn.v_cache[:, t:] = float("nan")
    assert torch.isfinite(attn(q, positions, first_row, from_start=True)).all()


def test_from_start_is_found_only_for_whole_prompts():
    assert prompts_from_start(torch.arange(5).expand(3, 5))
    assert not prompts_from_start(torch.arange(1, 6).expand(3, 5))  # a continuation
    assert not prompts_from_start(torch.stack([torch.arange(5), torch.arange(5) + 2]))  # one row continues


def test_the_model_detects_whole_prompts_and_continuations(monkeypatch):
    config = dataclasses.replace(TINY, num_hidden_layers=1)
    model = random_weights(config, torch.float32, "cpu", seed=0)
    model.set_attention_impl("torch")
    model.allocate_kv_cache(2, 32)
    seen = []
    real = Attention.forward

    def spy(self, q, positions, first_row=0, from_start=False):
        seen.append(from_start)
        return real(self, q, positions, first_row, from_start)

    monkeypatch.setattr(Attention, "forward", spy)
    ids = torch.randint(0, config.vocab_size, (2, 8), generator=torch.Generator().manual_seed(0))
    whole = model(ids, torch.arange(8).expand(2, 8))
    model(ids[:, :4], torch.arange(4).expand(2, 4))
    cont = model(ids[:, 4:], torch.arange(4, 8).expand(2, 4))  # the second half, after the first
    assert seen == [True, True, False]
    # A prompt prefilled in two pieces ends where the whole one does.
    torch.testing.assert_close(cont.view(2, 4, -1)[:, -1], whole.view(2, 8, -1)[:, -1], rtol=1e-4, atol=1e-4)


def test_padded_lengths():
    from qwen3.generate import padded_length

    assert [padded_length(t, 10_000) for t in (1, 16, 17, 64, 65, 100, 500, 513, 2048, 2049, 8192)] == [
        16, 16, 32, 64, 80, 112, 512, 640, 2048, 2560, 8192]
    assert padded_length(100, 110) == 110  # never past the cache
    assert all(t <= padded_length(t, 50_000) < 1.25 * t for t in range(64, 40_000, 7))


def test_a_padded_prompt_leaves_the_real_tokens_and_the_next_steps_unchanged():
    # What a prefill graph relies on: pad tokens after the prompt change neither its last token's
    # logits nor any later decode step (their cache slots are overwritten before they are read).
    config = dataclasses.replace(TINY, num_hidden_layers=2)
    model = random_weights(config, torch.float32, "cpu", seed=3)
    model.set_attention_impl("torch")
    ids = torch.randint(1, config.vocab_size, (2, 11), generator=torch.Generator().manual_seed(4))
    runs = []
    for pad in (0, 13):
        model.allocate_kv_cache(2, 32)
        padded = torch.cat([ids, torch.zeros(2, pad, dtype=torch.long)], 1)
        hidden = model(padded, torch.arange(11 + pad).expand(2, 11 + pad)).view(2, 11 + pad, -1)[:, 10].contiguous()
        steps = [model.compute_logits(hidden)]
        for p in range(11, 14):
            tokens = steps[-1].argmax(-1)[:, None]
            steps.append(model.compute_logits(model(tokens, torch.full((2, 1), p))))
        runs.append(torch.stack(steps))
    torch.testing.assert_close(runs[1], runs[0], rtol=1e-5, atol=1e-5)


def test_a_prefill_graph_entry_holds_every_tensor_its_capture_reads(monkeypatch):
    """A CUDA graph replays raw addresses: a tensor its capture read that nothing holds afterwards is
    freed and its memory reused, and replays after the first read whatever lies there (on the H100 the
    positions tensor, a local of the capture: relative error 0.90 on the second prompt length). Here
    the capture runs on the CPU with a stand-in graph, and every tensor the model's forward received
    must still be alive once the capture has returned and the garbage collector has run."""
    import contextlib
    import gc
    import weakref

    from qwen3 import generate

    class StandInGraph:
        def pool(self):
            return "pool"

    monkeypatch.setattr(torch.cuda, "CUDAGraph", StandInGraph)
    monkeypatch.setattr(torch.cuda, "graph", lambda graph, pool=None: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    model = random_weights(TINY, torch.float32, "cpu", seed=0)
    gen = generate.Generator(model, max_batch=2, max_len=40, cuda_graphs=False)
    seen = []
    real = model.forward
    monkeypatch.setattr(model, "forward", lambda ids, positions, *a, **k: seen.extend(
        weakref.ref(t) for t in (ids, positions)) or real(ids, positions, *a, **k))
    with torch.inference_mode():
        entry = gen._capture_prefill(2, 32, 0)
    gc.collect()
    assert seen and all(ref() is not None for ref in seen)
    assert torch.equal(entry.positions[1], torch.arange(32))
