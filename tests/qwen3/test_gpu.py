"""On a GPU: bf16 parity with transformers at Qwen3-0.6B size, CUDA-graph decode, fused tables, bench.
Every test skips without CUDA. Run: python -m pytest tests/qwen3/test_gpu.py"""

import dataclasses

import pytest
import torch

import kernel_space as ks
from qwen3.config import PRESETS
from qwen3.dispatch import Dispatcher
from qwen3.generate import Generator
from qwen3.loader import load_model, random_weights
from tests.conftest import requires_gpu
from tests.qwen3.helpers import table_dict
from tuner.candidates import default_configs

pytestmark = requires_gpu


def rel(out, ref) -> float:
    out, ref = out.double(), ref.double()
    return ((out - ref).norm() / ref.norm()).item()


def default_table(model, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)) -> dict:
    """A bf16 table of the tuner's first default config per op and bucket (not tuned: it exercises
    the fused kernels at every decode bucket)."""
    props = torch.cuda.get_device_properties(0)
    data = table_dict(model.op_shapes(), [], dtype="bfloat16")
    for op, (n, k) in model.op_shapes().items():
        data["ops"][op]["buckets"] = [
            {"m": m, "arm": "fused", "config": default_configs(op, m, n, k, 2, props.multi_processor_count,
                                                                props.shared_memory_per_block_optin)[0],
             "median_us": 1.0, "baseline_us": 1.0, "speedup": 1.0} for m in buckets]
    return data


@pytest.fixture(scope="module")
def hf_06b(tmp_path_factory):
    """transformers' Qwen3ForCausalLM at 0.6B size, random bf16 weights, saved to a folder."""
    import transformers

    config = PRESETS["qwen3-0.6b"]
    torch.manual_seed(0)
    with torch.device("cuda"):
        hf = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**config.to_hf_dict()))
    # .to(bfloat16) rounds the rotary inv_freq buffers to bf16 too, and the fp32 reference copied from
    # this model below would keep the rounded frequencies: at position 2,048 their angles are off by
    # radians, an error neither implementation under test makes. Kept in fp32, as a checkpoint loaded
    # in bf16 computes them.
    inv_freq = {name: buf.clone() for name, buf in hf.named_buffers() if name.endswith("inv_freq")}
    hf = hf.to(torch.bfloat16).eval()
    for name, buf in inv_freq.items():
        owner, _, attr = name.rpartition(".")
        setattr(hf.get_submodule(owner), attr, buf)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * (1.0 if "embed" in name else p.shape[-1] ** -0.5))
    folder = tmp_path_factory.mktemp("qwen3-0.6b")
    hf.save_pretrained(folder)
    return hf, folder


@pytest.mark.parametrize("impl", ["triton", "torch"])
@pytest.mark.parametrize("length", [40, 2048])
def test_bf16_logits_match_transformers_at_06b(hf_06b, impl, length):
    """In bf16 neither implementation is exact: ours must be as close to transformers in fp32 as
    transformers' own bf16 run is (28 random layers put both at ~2% relative error). Prefill (a
    short prompt, through its CUDA graph, and a 2k one) and eight CUDA-graph decode steps, with the
    attention kernels (kernel_space.qk_norm_rope_cache and .decode_attention) and without."""
    import copy

    hf, folder = hf_06b
    model = load_model(folder, dtype=torch.bfloat16, device="cuda")
    model.set_attention_impl(impl)
    prompt = torch.randint(0, 151936, (2, length), device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    gen = Generator(model, max_batch=2, max_len=length + 24)
    logits = [gen.prefill(prompt.tolist())]
    tokens = [logits[0].argmax(-1)]
    for step in range(8):
        logits.append(gen.decode_step(tokens[-1], torch.full((2,), length + step, device="cuda")))
        tokens.append(logits[-1].argmax(-1))
    seq = torch.cat([prompt, torch.stack(tokens[:-1], 1)], 1)
    with torch.no_grad():
        ref16 = hf(seq).logits[:, length - 1:]
        ref32 = copy.deepcopy(hf).float()(seq).logits[:, length - 1:]
    for step, out in enumerate(logits):
        ours, theirs = rel(out, ref32[:, step]), rel(ref16[:, step], ref32[:, step])
        print(f"step {step}: ours {ours:.2e}, transformers bf16 {theirs:.2e} (vs fp32)")
        assert ours < 1.5 * theirs + 1e-3, f"step {step}: {ours:.2e} vs transformers' own bf16 {theirs:.2e}"


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_cuda_graph_decode_equals_eager(batch):
    config = dataclasses.replace(PRESETS["qwen3-0.6b"], num_hidden_layers=4)
    model = random_weights(config, torch.bfloat16, "cuda", seed=1)
    prompts = torch.randint(0, config.vocab_size, (batch, 16), generator=torch.Generator().manual_seed(batch))
    out = {}
    for graphs in (False, True):
        gen = Generator(model, max_batch=8, max_len=32, cuda_graphs=graphs)
        out[graphs] = gen.generate(prompts.tolist(), 12)
        if graphs:
            assert set(gen.buckets) == {1, 2, 4, 8}
    assert out[True] == out[False]


def test_greedy_graph_argmax_equals_the_logits_argmax():
    """decode_greedy's argmax, run inside the decode graph, at a padded bucket (3 of 4 rows) and a full
    one, against the argmax of the same step's logits."""
    config = dataclasses.replace(PRESETS["qwen3-0.6b"], num_hidden_layers=4)
    model = random_weights(config, torch.bfloat16, "cuda", seed=2)
    gen = Generator(model, max_batch=4, max_len=40)
    for batch in (3, 4):
        prompts = torch.randint(0, config.vocab_size, (batch, 16), generator=torch.Generator().manual_seed(batch))
        tokens = gen.prefill(prompts.tolist()).argmax(-1)
        for step in range(4):
            positions = torch.full((batch,), 16 + step, device="cuda")
            logits = gen.decode_step(tokens, positions)
            greedy = gen.decode_greedy(tokens, positions)
            assert greedy.shape == (batch,) and torch.equal(greedy, logits.argmax(-1))
            tokens = greedy


def test_fused_table_matches_the_baseline_in_graphs():
    config = dataclasses.replace(PRESETS["qwen3-0.6b"], num_hidden_layers=4)
    model = random_weights(config, torch.bfloat16, "cuda", seed=2)
    ops = Dispatcher(default_table(model))
    prompts = torch.randint(0, config.vocab_size, (4, 24), generator=torch.Generator().manual_seed(0)).tolist()
    logits = {}
    for arm, dispatcher in (("base", Dispatcher()), ("fused", ops)):
        model.set_dispatcher(dispatcher)
        gen = Generator(model, max_batch=4, max_len=40)
        assert all(c.arm == ("fused" if arm == "fused" else "unfused") for p in gen.plans.values() for c in p.values())
        tokens = gen.prefill(prompts).argmax(-1)
        positions = torch.full((4,), 24, device="cuda")
        logits[arm] = gen.decode_step(tokens, positions).clone()
    assert rel(logits["fused"], logits["base"]) < 2e-2
    assert set(ks.OPS) == set(model.plan(1))


@pytest.mark.parametrize("combine", ["kernel", "last_program"])
def test_prep_fused_in_graph_decode_equals_separate(combine):
    """Decode attention with prep fused (q/k norm, RoPE and the cache write inside its kernel) through
    CUDA-graph decode, bf16, 4 splits over a 320-slot cache: the logits of prep separate, step by step
    on the same tokens, within bf16 noise."""
    from kernel_space.decode_attention import attention_plan

    config = dataclasses.replace(PRESETS["qwen3-0.6b"], num_hidden_layers=4)
    model = random_weights(config, torch.bfloat16, "cuda", seed=5)
    prompts = torch.randint(0, config.vocab_size, (3, 20), generator=torch.Generator().manual_seed(1)).tolist()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    logits, tokens = {}, []  # separate's tokens feed both runs
    for prep in ("separate", "fused"):
        def decode_config(p, prep=prep):
            plan = attention_plan(p.batch, p.heads, p.kv_heads, p.head_dim, p.context, sms, early=False)
            return {**plan, "SPLITS": 4, "combine": combine, "prep": prep}

        model.set_attention_config(decode_config)
        gen = Generator(model, max_batch=4, max_len=320)
        steps = [gen.prefill(prompts)]
        for i in range(6):
            if prep == "separate":
                tokens.append(steps[-1].argmax(-1))
            steps.append(gen.decode_step(tokens[i], torch.full((3,), 20 + i, device="cuda")))
        assert gen.buckets and model.attention_choice(3).config["prep"] == prep
        logits[prep] = torch.stack(steps)
    model.set_attention_config(None)
    assert rel(logits["fused"], logits["separate"]) < 2e-2


def test_bench_runs_both_arms_with_a_breakdown():
    from qwen3.bench import PARTS, run_bench

    config = dataclasses.replace(PRESETS["qwen3-0.6b"], num_hidden_layers=2)
    model = random_weights(config, torch.bfloat16, "cuda")
    rows = run_bench(config, [1, 3], [16, 40], 8, Dispatcher(default_table(model)), breakdown=True, repeats=1)
    assert [(r.arm, r.batch, r.context) for r in rows] == [
        (arm, b, c) for arm in ("unfused", "table") for c in (16, 40) for b in (1, 3)]
    for r in rows:
        assert r.tokens_per_s > 0 and r.decode_ms > 0
        parts = r.breakdown_us
        # Medians over repeats, taken per part: their sum is near the median total, not equal to it.
        assert abs(sum(parts[p] for p in PARTS) - parts["kernels"]) < 0.05 * parts["kernels"]
        # At these short caches the default attention plan norms, rotates and writes q/k itself (prep=fused).
        assert all(parts[p] > 0 for p in PARTS if p not in ("other", "q/k norm + rope"))
        # The kernels of a step, timed eagerly one by one, add up to about the CUDA-graph step, not to a
        # multiple of it (a kernel counted twice, or a second step's). Alone on an H200 they stayed within
        # 1.1x of it; with six test workers sharing the GPU, 1.10x and 1.14x (thirty-second and -third
        # sessions), so the bound is loose: a timing is for benchmarks, this checks what was summed.
        assert parts["kernels"] < 1.8 * r.decode_ms * 1000
    assert set(rows[-1].plan.values()) == {"fused"}


def test_prompt_attention_runs_on_the_flash_backend():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from qwen3.layers import Attention

    attn = Attention(16, 8, 128)
    attn.k_cache = torch.randn(3, 600, 8, 128, device="cuda", dtype=torch.bfloat16)
    attn.v_cache = torch.randn(3, 600, 8, 128, device="cuda", dtype=torch.bfloat16)
    q = torch.randn(2, 517, 16, 128, device="cuda", dtype=torch.bfloat16)
    positions = torch.arange(517, device="cuda").expand(2, 517)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):  # raises if flash cannot serve the call
        fast = attn(q, positions, first_row=1, from_start=True)
    masked = attn(q, positions, first_row=1, from_start=False)
    assert rel(fast, masked) < 1e-2


def test_prefill_graphs_give_the_eager_logits():
    from qwen3 import generate

    config = dataclasses.replace(PRESETS["qwen3-0.6b"], num_hidden_layers=4)
    # One model each: a Generator's graphs hold the addresses of the KV cache it allocated.
    gens = {graphs: Generator(random_weights(config, torch.bfloat16, "cuda", seed=3), max_batch=3, max_len=64,
                              cuda_graphs=graphs) for graphs in (False, True)}
    for length in (20, 23, 41):  # 20 and 23 share the graph padded to 32; 41 gets one of 48
        prompts = torch.randint(0, config.vocab_size, (3, length), generator=torch.Generator().manual_seed(length))
        out, tokens = {}, None
        for graphs, gen in gens.items():  # eager first: both decode steps take its tokens
            logits = gen.prefill(prompts.tolist())
            tokens = logits.argmax(-1) if tokens is None else tokens
            out[graphs] = [logits, gen.decode_step(tokens, torch.full((3,), length, device="cuda"))]
        for eager, graphed in zip(out[False], out[True], strict=True):
            assert rel(graphed, eager) < 2e-2
    assert sorted(gens[True]._prefill_graphs) == [(3, generate.padded_length(n, 64), 0) for n in (20, 41)]
    assert [generate.padded_length(n, 64) for n in (20, 23, 41)] == [32, 32, 48]
