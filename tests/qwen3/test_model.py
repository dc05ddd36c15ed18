"""The model against transformers' Qwen3ForCausalLM on the same weights, baseline and fused (fp32, CPU)."""

import dataclasses

import pytest
import torch

from qwen3.dispatch import Dispatcher
from qwen3.generate import Generator
from qwen3.loader import load_model
from tests.conftest import requires_interpreter
from tests.qwen3.helpers import DOT, FMA_M1, TINY, hf_model, table_dict

# fp32 throughout: the largest logit difference over the largest logit.
RTOL = 1e-4


def close(out, ref, rtol=RTOL):
    err = (out.float() - ref.float()).abs().max().item() / ref.abs().max().item()
    assert err < rtol, f"max abs diff / max abs = {err:.2e} >= {rtol:.0e}"


@pytest.fixture(scope="module", params=[True, False], ids=["tied", "untied"])
def saved(request, tmp_path_factory):
    """(transformers model, folder it was saved to) for tied and untied embeddings."""
    config = dataclasses.replace(TINY, tie_word_embeddings=request.param)
    hf = hf_model(config, seed=int(request.param))
    folder = tmp_path_factory.mktemp("tied" if request.param else "untied")
    hf.save_pretrained(folder, safe_serialization=True)
    return hf, folder


def hf_logits(hf, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return hf(ids).logits


def run_sequence(model, prompt: torch.Tensor, steps: int):
    """Prefill prompt [B, T], then `steps` greedy decode steps; logits of every step and the tokens."""
    gen = Generator(model, max_batch=prompt.shape[0], max_len=prompt.shape[1] + steps + 1)
    logits = [gen.prefill(prompt.tolist())]
    tokens = [logits[-1].argmax(-1)]
    for step in range(steps):
        positions = torch.full((prompt.shape[0],), prompt.shape[1] + step)
        logits.append(gen.decode_step(tokens[-1], positions))
        tokens.append(logits[-1].argmax(-1))
    return logits, torch.stack(tokens, dim=1)


def same_run(model, ref, prompt: torch.Tensor, steps: int) -> None:
    """model and ref pick the same greedy tokens over prompt and `steps` decode steps, with logits close."""
    out, tokens = run_sequence(model, prompt, steps)
    ref_out, ref_tokens = run_sequence(ref, prompt, steps)
    assert torch.equal(tokens, ref_tokens)
    for a, b in zip(out, ref_out, strict=True):
        close(a, b)


def test_prefill_and_decode_match_transformers(saved):
    hf, folder = saved
    model = load_model(folder, dtype=torch.float32, device="cpu")
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == hf.config.tie_word_embeddings
    prompt = torch.randint(0, TINY.vocab_size, (3, 6), generator=torch.Generator().manual_seed(1))
    logits, tokens = run_sequence(model, prompt, steps=4)
    # transformers on the whole sequence (teacher-forced on our greedy tokens) gives every step's logits.
    ref = hf_logits(hf, torch.cat([prompt, tokens[:, :-1]], dim=1))
    for step, out in enumerate(logits):
        close(out, ref[:, prompt.shape[1] - 1 + step])


def test_prompts_of_different_lengths(saved):
    hf, folder = saved
    model = load_model(folder, dtype=torch.float32, device="cpu")
    prompts = [[5, 9, 1, 33], [7], [2, 3, 4, 5, 6, 7, 8]]
    gen = Generator(model, max_batch=3, max_len=12)
    first = gen.prefill(prompts)
    for row, prompt in enumerate(prompts):
        close(first[row], hf_logits(hf, torch.tensor([prompt]))[0, -1])
    # One decode step for all three at their own positions.
    tokens = first.argmax(-1)
    step = gen.decode_step(tokens, torch.tensor([len(p) for p in prompts]))
    for row, prompt in enumerate(prompts):
        close(step[row], hf_logits(hf, torch.tensor([prompt + [tokens[row].item()]]))[0, -1])


def test_greedy_decoding_picks_the_argmax_of_the_decode_step(saved):
    """decode_greedy is decode_step's argmax, and generate's greedy tokens are the ones a loop over
    decode_step and sample() picks (generate runs decode_greedy when temperature is 0)."""
    from qwen3.generate import SamplingParams, sample

    _, folder = saved
    model = load_model(folder, dtype=torch.float32, device="cpu")
    prompts = [[5, 9, 1, 33], [7, 2, 8, 1]]
    gen = Generator(model, max_batch=2, max_len=12)
    tokens = sample(gen.prefill(prompts), SamplingParams())
    want = []
    for step in range(4):
        positions = torch.full((2,), 4 + step)
        logits = gen.decode_step(tokens, positions)
        assert torch.equal(gen.decode_greedy(tokens, positions), logits.argmax(-1))
        tokens = sample(logits, SamplingParams())
        want.append(tokens)
    assert gen.decode_greedy(tokens, positions).dtype == torch.long
    assert gen.generate(prompts, 5) == torch.stack([sample(gen.prefill(prompts), SamplingParams())] + want,
                                                   1).tolist()


@requires_interpreter
def test_fused_kernels_give_the_baseline_logits(saved, monkeypatch):
    """A table with fused configs (fma at M = 1, dot above) through Triton's interpreter."""
    hf, folder = saved
    base = load_model(folder, dtype=torch.float32, device="cpu")
    table = table_dict(base.op_shapes(), [(1, "fused", FMA_M1), (16, "fused", DOT)])
    fused = load_model(folder, dtype=torch.float32, device="cpu", ops=Dispatcher(table))
    assert {c.arm for m in (1, 5) for c in fused.plan(m).values()} == {"fused"}

    import qwen3.dispatch as dispatch

    calls = []
    real = dispatch.rmsnorm_gate_up_silu
    monkeypatch.setattr(dispatch, "rmsnorm_gate_up_silu", lambda *a, **kw: calls.append(a[3]) or real(*a, **kw))
    prompt = torch.randint(0, TINY.vocab_size, (1, 5), generator=torch.Generator().manual_seed(2))
    same_run(fused, base, prompt, steps=2)
    # Prefill (M = 5) ran the dot config, each decode step (M = 1) the fma one, in every layer.
    layers = TINY.num_hidden_layers
    assert [c["path"] for c in calls] == ["dot"] * layers + ["fma"] * 2 * layers


def test_greedy_generation_is_deterministic_and_is_transformers_argmax(saved):
    hf, folder = saved
    model = load_model(folder, dtype=torch.float32, device="cpu")
    gen = Generator(model, max_batch=2, max_len=16)
    prompts = [[1, 2, 3], [4, 5, 6]]
    streamed = []
    first = gen.generate(prompts, max_tokens=6, on_token=lambda i, t: streamed.append((i, t)))
    assert first == gen.generate(prompts, max_tokens=6)
    assert sorted(streamed) == sorted((i, t) for i, seq in enumerate(first) for t in seq)
    for prompt, new in zip(prompts, first, strict=True):
        ref = hf_logits(hf, torch.tensor([prompt + new]))[0, len(prompt) - 1:-1].argmax(-1)
        assert new == ref.tolist()


def test_generation_stops_at_a_stop_id(saved):
    _, folder = saved
    gen = Generator(load_model(folder, dtype=torch.float32, device="cpu"), max_batch=1, max_len=16)
    full = gen.generate([[1, 2, 3]], max_tokens=5)[0]
    cut = gen.generate([[1, 2, 3]], max_tokens=5, stop_ids=[full[2]])[0]
    assert cut == full[:full.index(full[2])]


def test_the_loaders_fold_the_norm_gains_once_and_the_logits_stay(saved):
    """load_model folds each layer's two norm gains into qkv_proj and gate_up_proj (the norm sites then
    run without a gain); the logits are the unfolded model's, and a second fold changes nothing."""
    hf, folder = saved
    folded = load_model(folder, dtype=torch.float32, device="cpu")
    plain = load_model(folder, dtype=torch.float32, device="cpu", fold_gains=False)
    assert folded.gains_folded and not plain.gains_folded
    layer, ref = folded.model.layers[1], plain.model.layers[1]
    g = ref.input_layernorm.weight
    assert not torch.equal(g, torch.ones_like(g))  # the test's gains are not all 1
    assert torch.allclose(layer.self_attn.qkv_proj.weight, ref.self_attn.qkv_proj.weight * g)
    assert torch.allclose(layer.mlp.gate_up_proj.weight,
                          ref.mlp.gate_up_proj.weight * ref.post_attention_layernorm.weight)
    before = layer.self_attn.qkv_proj.weight.clone()
    folded.fold_norm_gains()
    assert torch.equal(layer.self_attn.qkv_proj.weight, before)
    prompt = torch.randint(0, TINY.vocab_size, (2, 5), generator=torch.Generator().manual_seed(4))
    same_run(folded, plain, prompt, steps=3)


@requires_interpreter
def test_greedy_runs_the_fused_argmax_where_lm_head_is_fused(saved, monkeypatch):
    """With KERNEL_SEARCH_FUSED_ARGMAX=1 compute_greedy takes lm_head's fused config with the argmax in
    its epilogue (the logits never written) where the table fuses lm_head, and the argmax of the logits
    where it does not or the variable is 0: the same tokens every way."""
    import qwen3.dispatch as dispatch

    hf, folder = saved
    base = load_model(folder, dtype=torch.float32, device="cpu")
    table = table_dict(base.op_shapes(), [(1, "fused", FMA_M1), (16, "fused", DOT)])
    assert not Dispatcher(table).fuse_argmax  # off by default
    monkeypatch.setenv("KERNEL_SEARCH_FUSED_ARGMAX", "1")
    fused = load_model(folder, dtype=torch.float32, device="cpu", ops=Dispatcher(table))
    calls = []
    real = dispatch.lm_head_argmax
    monkeypatch.setattr(dispatch, "lm_head_argmax", lambda *a, **kw: calls.append(a[3]) or real(*a, **kw))
    hidden = torch.randn((5, TINY.hidden_size), generator=torch.Generator().manual_seed(3))
    want = base.compute_logits(hidden).argmax(-1)
    assert fused.fuses_argmax(5) and not base.fuses_argmax(5)
    assert torch.equal(fused.compute_greedy(hidden), want) and [c["path"] for c in calls] == ["dot"]
    assert torch.equal(base.compute_greedy(hidden), want) and len(calls) == 1
    monkeypatch.setenv("KERNEL_SEARCH_FUSED_ARGMAX", "0")
    off = load_model(folder, dtype=torch.float32, device="cpu", ops=Dispatcher(table))
    assert not off.fuses_argmax(5) and torch.equal(off.compute_greedy(hidden), want) and len(calls) == 1
