"""Decode attention's keys in the (op, m, n, k) of a study: the round trip, what they refuse, the
buckets a tune covers, and the interval rule that serves a (batch, context)."""

import pytest

import kernel_space as ks
from kernel_space.attention_shape import (
    ATTENTION_OP,
    MAX_CONTEXT,
    MAX_KEY,
    attention_buckets,
    context_buckets,
    decode_heads,
    decode_m,
    describe,
    encode_heads,
    encode_m,
    kv_cache_bytes,
    parse_contexts,
    serving_bucket,
)
from kernel_space.spec import Problem
from qwen3.config import PRESETS
from tests.conftest import requires_interpreter


@pytest.mark.parametrize("batch, context", [(1, 1), (1, 256), (8, 4096), (256, 32768), (999, 40960), (3, MAX_CONTEXT)])
def test_m_round_trips_and_reads_in_decimal(batch, context):
    m = encode_m(batch, context)
    assert decode_m(m) == (batch, context) and 1 <= m <= MAX_KEY
    assert str(m).endswith(f"{batch:03d}") and str(m).startswith(str(context))


@pytest.mark.parametrize("heads, kv_heads, head_dim",
                         [(16, 8, 128), (32, 8, 128), (64, 8, 128), (4, 2, 16), (7, 1, 64)])
def test_heads_round_trip(heads, kv_heads, head_dim):
    n, k = encode_heads(heads, kv_heads, head_dim)
    assert decode_heads(n, k) == (heads, kv_heads, head_dim) and k == head_dim


def test_a_gemm_style_m_is_refused_never_read_as_context_zero():
    for m in (1, 8, 256, 999, 4096000):  # batch 0 or context 0
        with pytest.raises(ValueError, match="is not context \\* 1000 \\+ batch"):
            decode_m(m)
    with pytest.raises(ValueError, match="M key"):
        decode_m(0)
    with pytest.raises(ValueError, match="M key"):
        decode_m(True)
    with pytest.raises(ValueError, match="M key"):
        decode_m(MAX_KEY + 1)


@pytest.mark.parametrize("batch, context, match", [(0, 256, "batch must be a positive int"),
                                                   (1000, 256, "batch 1000 exceeds 999"),
                                                   (1, 0, "context must be a positive int"),
                                                   (1, MAX_CONTEXT + 1, "exceeds"),
                                                   (2.0, 256, "batch must be a positive int")])
def test_encode_m_refuses(batch, context, match):
    with pytest.raises(ValueError, match=match):
        encode_m(batch, context)


@pytest.mark.parametrize("n, k, match", [(16, 128, "is not heads \\* 1000"),  # no KV heads
                                         (8, 128, "is not heads"),  # 0 heads
                                         (16003, 128, "reads as 16 heads over 3 KV heads"),  # no grouping
                                         (16008, 0, "K must be an int"), (-1, 128, "N must be an int")])
def test_decode_heads_refuses(n, k, match):
    with pytest.raises(ValueError, match=match):
        decode_heads(n, k)


def test_encode_heads_refuses():
    with pytest.raises(ValueError, match="do not split into groups"):
        encode_heads(16, 3, 128)
    with pytest.raises(ValueError, match="kv_heads 1000 exceeds"):
        encode_heads(1000, 1000, 128)


def test_problem_checks_attention_keys_and_leaves_gemm_ones_alone():
    n, k = encode_heads(16, 8, 128)
    assert Problem(ATTENTION_OP, encode_m(8, 4096), n, k, "bfloat16").m == 4096008
    with pytest.raises(ValueError, match="M key 8 is not"):
        Problem(ATTENTION_OP, 8, n, k, "bfloat16")
    with pytest.raises(ValueError, match="N 16 is not"):
        Problem(ATTENTION_OP, encode_m(8, 4096), 16, 128, "bfloat16")
    assert Problem("o_proj_residual", 8, 16, 128, "bfloat16").m == 8


def test_the_registry_knows_attention_beside_the_linear_sites():
    assert ATTENTION_OP in ks.ALL_OPS and ATTENTION_OP not in ks.OPS
    assert set(ks.ALL_OPS) == set(ks.OPS) | {ATTENTION_OP}
    spec = ks.get_op(ATTENTION_OP)
    assert spec.kind == "attention" and spec.cublas is None
    assert spec.shape(PRESETS["qwen3-0.6b"].dims()) == (16008, 128)
    assert spec.shape(PRESETS["qwen3-8b"].dims()) == (32008, 128)
    assert spec.check({"impl": "fused"}, 8, 16008, 128, 2).startswith("decode_attention M key 8")  # never raises
    m = encode_m(4, 4096)
    assert spec.cold_bytes(m, 16008, 128, 2) == 2 * 4 * 4096 * 8 * 128 * 2  # K and V of 4 full sequences
    for cfg in spec.default_configs(m, 16008, 128, 2):
        assert spec.check(cfg, m, 16008, 128, 2) is None and spec.redundant(cfg, m, 16008, 128, 2) is None


def test_describe():
    assert describe("lm_head", 16) == "M=16"
    assert describe(ATTENTION_OP, 4096008) == "M=8 ctx=4096"


def test_context_buckets_end_at_the_models_maximum():
    assert context_buckets(40960) == (256, 1024, 4096, 16384, 32768, 40960)
    assert context_buckets(32768) == (256, 1024, 4096, 16384, 32768)
    assert context_buckets(2048) == (256, 1024, 2048)
    assert context_buckets(100) == (100,)
    assert parse_contexts("4096, 256,256") == (256, 4096)
    for bad in ("", "x", "0", f"{MAX_CONTEXT + 1}"):
        with pytest.raises(ValueError, match="contexts must be"):
            parse_contexts(bad)


def test_only_sane_kv_caches_are_tuned():
    """Qwen3-0.6B on an 80 GB card: 28 layers x 8 KV heads x 128 x bf16 = 112 KiB a token, so a bucket's
    batch x context stays under 40 GB / 112 KiB = 348,772 tokens; prefill buckets are no decode batch."""
    c = PRESETS["qwen3-0.6b"]
    pairs = attention_buckets([1, 8, 16, 64, 128, 256, 512], context_buckets(c.max_position_embeddings),
                              layers=c.num_hidden_layers, kv_heads=c.num_key_value_heads, head_dim=c.head_dim,
                              elem_bytes=2, memory_bytes=80 * 10**9)
    assert kv_cache_bytes(8, 40960, 28, 8, 128, 2) <= 40 * 10**9 < kv_cache_bytes(16, 32768, 28, 8, 128, 2)
    assert (8, 40960) in pairs and (16, 16384) in pairs and (64, 4096) in pairs and (256, 1024) in pairs
    assert (16, 32768) not in pairs and (128, 4096) not in pairs and (256, 4096) not in pairs
    assert not [p for p in pairs if p[0] > 256]
    assert pairs == sorted(pairs)  # batch-major


KEYS = [encode_m(b, c) for c in (256, 4096) for b in (1, 4, 16)] + [encode_m(1, 32768)]


@pytest.mark.parametrize("batch, context, served", [
    (1, 1, (1, 256)), (1, 256, (1, 256)), (2, 256, (4, 256)), (16, 100, (16, 256)),  # interval on both
    (3, 257, (4, 4096)), (16, 4096, (16, 4096)), (5, 4000, (16, 4096)),
    (1, 4097, (1, 32768)), (1, 32768, (1, 32768)),
])
def test_serving_bucket_is_by_interval_on_context_then_batch(batch, context, served):
    key, why = serving_bucket(KEYS, batch, context)
    assert why == "" and decode_m(key) == served


@pytest.mark.parametrize("batch, context, why", [
    (17, 256, "batch 17 is past the last batch tuned at context 256 (16)"),
    (2, 4097, "batch 2 is past the last batch tuned at context 32768 (1)"),
    (1, 32769, "a cache of 32769 slots is past the last tuned context (32768)"),
])
def test_past_the_last_bucket_nothing_serves(batch, context, why):
    assert serving_bucket(KEYS, batch, context) == (None, why)
    assert serving_bucket([], 1, 1) == (None, "no decode attention bucket is tuned")


@requires_interpreter
def test_the_spec_runs_the_kernel_its_reference_and_baseline_on_study_keys():
    """make_inputs at a study's keys (the qkv rows: every arm starts there), both preps of the plan and the
    unfused path (qk_norm_rope_cache + SDPA) within tolerance of the reference (a sequence at a time, equal
    to the whole batch's), and compile inputs with a short cache of the same kind."""
    import torch

    from kernel_space._common import TOLERANCE, rel_error
    from kernel_space.decode_attention import decode_attention_reference, prep_reference

    spec, m = ks.get_op(ATTENTION_OP), encode_m(3, 80)
    inputs = spec.make_inputs(m, 4002, 16, torch.float32, "cpu", torch.Generator().manual_seed(0))
    assert inputs["qkv"].shape == (3, (4 + 2 * 2) * 16) and "q" not in inputs
    inputs["positions"][1] = 16  # one shorter sequence
    (ref,) = spec.reference(inputs)
    i = inputs
    q, k, v = prep_reference(i["qkv"], i["q_norm_w"], i["k_norm_w"], i["cos"], i["sin"], i["eps"], i["positions"], 2,
                             80)
    k_cache, v_cache = i["k_cache"].clone(), i["v_cache"].clone()
    rows = torch.arange(3)
    k_cache[rows, i["positions"][:, 0]], v_cache[rows, i["positions"][:, 0]] = k, v
    whole = decode_attention_reference(q, k_cache, v_cache, i["positions"], i["scale"])
    assert torch.allclose(ref, whole, rtol=0, atol=1e-12) and ref.shape == (3, 1, 64)
    configs = spec.default_configs(m, 4002, 16, 4)
    # The plan (kv=early at this short cache, so prep fused), the loop plan, then each with the other prep.
    assert [(c["prep"], c.get("kv", "loop")) for c in configs[:4]] == [("fused", "early"), ("separate", "loop"),
                                                                        ("separate", "early"), ("fused", "loop")]
    for out in [spec.fused(inputs, cfg)[0] for cfg in configs[:4]] + [spec.unfused(inputs)[0]]:
        assert rel_error(out, ref) <= TOLERANCE[torch.float32]
    gen = torch.Generator().manual_seed(0)
    assert spec.compile_inputs(encode_m(2, 4096), 4002, 16, torch.float32, "cpu", gen)["k_cache"].shape[1] == 256
    assert spec.compile_inputs(encode_m(2, 4100), 4002, 16, torch.float32, "cpu", gen)["k_cache"].shape[1] == 257
    short = spec.compile_inputs(encode_m(2, 100), 4002, 16, torch.float32, "cpu", gen)
    assert short["k_cache"].shape[1] == 100 and short["cos"].shape == (100, 16) and short["qkv"].shape == (2, 128)
