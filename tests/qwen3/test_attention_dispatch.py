"""Decode attention through the dispatcher: looked up by interval on the cache's slots then the batch,
the default plan wherever the table cannot serve (said once past the last bucket), and a table without
decode attention leaves the model exactly as it was (the plan, from the launcher)."""

import warnings

import pytest
import torch

import qwen3.layers as layers
from kernel_space import kernel_hash
from kernel_space.attention_shape import encode_m
from kernel_space.decode_attention import AttentionProblem
from qwen3.dispatch import Dispatcher
from qwen3.loader import random_weights
from tests.conftest import DEVICE
from tests.qwen3.helpers import DOT, TINY, table_dict

SHAPES = {"o_proj_residual": (40, 64)}
LINEAR = [(1, "fused", DOT), (16, "unfused", {"impl": "unfused"})]
# TINY: 4 heads over 2 KV heads of 16. A config other than the plan, so that the test can tell them apart.
HEAD = {"impl": "fused", "SPLITS": 2, "BLOCK_N": 16, "pack": "head", "combine": "kernel", "num_warps": 2,
        "num_stages": 1}
GROUP = {"impl": "fused", "SPLITS": 1, "BLOCK_N": 32, "pack": "group", "combine": "kernel", "num_warps": 4,
         "num_stages": 2}


def attention_table(buckets, dtype="float32", n=4002, k=16) -> dict:
    """table_dict's linear entry plus decode attention with (batch, context, arm, config) buckets."""
    data = table_dict(SHAPES, LINEAR, dtype=dtype)
    data["format"] = 2
    heads, kv_heads = divmod(n, 1000)
    data["ops"]["decode_attention"] = {
        "N": n, "K": k, "heads": heads, "kv_heads": kv_heads, "head_dim": k,
        "kernel_hash": kernel_hash("decode_attention"),
        "buckets": [{"m": encode_m(b, c), "batch": b, "context": c, "arm": arm, "config": dict(cfg),
                     "median_us": 1.0, "baseline_us": 2.0, "speedup": 2.0}
                    for b, c, arm, cfg in sorted(buckets, key=lambda x: (x[1], x[0]))],
    }
    return data


BUCKETS = [(1, 32, "fused", HEAD), (4, 32, "unfused", {"impl": "unfused"}), (4, 64, "fused", GROUP)]


def problem(batch, context, dtype="float32", heads=4, kv_heads=2, head_dim=16):
    return AttentionProblem(batch, heads, kv_heads, head_dim, context, dtype)


def quiet(data) -> Dispatcher:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return Dispatcher(data)


@pytest.mark.parametrize("batch, context, arm, config", [
    (1, 1, "fused", HEAD), (1, 32, "fused", HEAD), (2, 20, "unfused", {"impl": "unfused"}),
    (4, 32, "unfused", {"impl": "unfused"}), (1, 33, "fused", GROUP), (3, 64, "fused", GROUP),
])
def test_lookup_by_interval_on_context_then_batch(batch, context, arm, config):
    ops = quiet(attention_table(BUCKETS))
    choice = ops.choose_attention(problem(batch, context))
    assert (choice.arm, choice.config) == (arm, config)
    assert ops.attention_config(problem(batch, context)) == config


def test_past_the_last_bucket_runs_the_plan_and_says_so_once():
    ops = quiet(attention_table(BUCKETS))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ops.choose_attention(problem(5, 64)).arm == "plan"
        assert ops.attention_config(problem(5, 64)) is None  # None: the launcher's default plan
        assert ops.choose_attention(problem(1, 65)).reason == "a cache of 65 slots is past the last tuned context (64)"
        assert ops.choose_attention(problem(5, 40)).arm == "plan"
    assert len(caught) == 1
    assert "decode_attention runs at batch 5 over a cache of 64 slots: batch 5 is past the last batch tuned at " \
           "context 64 (4) in the dispatch table; it runs its default plan" in str(caught[0].message)


def test_no_table_or_no_attention_entry_runs_the_plan_silently():
    for ops in (Dispatcher(), quiet(table_dict(SHAPES, LINEAR))):
        choice = ops.choose_attention(problem(1, 32))
        assert choice.arm == "plan" and ops.attention_config(problem(1, 32)) is None
    assert "no decode_attention in the dispatch table" in choice.reason


@pytest.mark.parametrize("other, words", [
    (problem(1, 32, heads=8), "tuned for N, K = 4002, 16"),
    (problem(1, 32, dtype="float16"), "tuned for float32"),
])
def test_other_heads_or_dtype_run_the_plan(other, words):
    ops = quiet(attention_table(BUCKETS))
    with pytest.warns(RuntimeWarning, match="runs its default plan"):
        choice = ops.choose_attention(other)
    assert choice.arm == "plan" and words in choice.reason


def test_stale_hash_or_refused_config_runs_the_plan():
    data = attention_table(BUCKETS)
    data["ops"]["decode_attention"]["kernel_hash"] = "0123456789abcdef"
    with pytest.warns(RuntimeWarning, match="kernel hash for decode_attention .* runs its default plan"):
        ops = Dispatcher(data)
    assert ops.choose_attention(problem(1, 32)).reason == "kernel source changed since tuning"
    data = attention_table([(1, 32, "fused", {**HEAD, "num_warps": 16})])
    with pytest.warns(RuntimeWarning, match="config at M=1 ctx=32 cannot run here .*: that bucket runs its default"):
        ops = Dispatcher(data)
    assert ops.choose_attention(problem(1, 32)).arm == "plan"
    assert quiet(attention_table(BUCKETS)).choose("o_proj_residual", 1).arm == "fused"  # the linear op is untouched


def test_a_config_with_other_keys_never_reaches_the_launcher():
    """decode attention's check refuses a key outside its space: that bucket runs the plan."""
    data = attention_table([(1, 32, "fused", {**HEAD, "__class__": "os.system"})])
    with pytest.warns(RuntimeWarning, match="__class__ is not a parameter of decode_attention"):
        ops = Dispatcher(data)
    assert ops.attention_config(problem(1, 32)) is None


def test_choose_refuses_attention():
    with pytest.raises(ValueError, match="use choose_attention"):
        Dispatcher().choose("decode_attention", 1)


def _decode_configs(model, monkeypatch, batch=2, max_len=40) -> list:
    """The configs decode_attention got during one decode step of `batch` sequences (None: the plan)."""
    seen = []
    real = layers.decode_attention
    monkeypatch.setattr(layers, "decode_attention", lambda *a, **kw: seen.append(a[-1]) or real(*a, **kw))
    model.set_attention_impl("triton")
    model.allocate_kv_cache(batch, max_len)
    with torch.inference_mode():
        model(torch.zeros((batch, 1), dtype=torch.long, device=DEVICE), torch.full((batch, 1), 5, device=DEVICE))
    monkeypatch.setattr(layers, "decode_attention", real)
    return seen


def test_a_bucket_with_prep_fused_runs_the_fused_kernel_and_one_without_prep_runs_separate(monkeypatch):
    """A table's prep=fused config reaches decode_attention_prep (and no decode_attention runs); GROUP,
    which has no prep key (a table written before it), runs as prep=separate."""
    fused = {**GROUP, "prep": "fused"}
    model = random_weights(TINY, torch.float32, DEVICE, seed=0)
    model.set_dispatcher(quiet(attention_table([(1, 32, "fused", GROUP), (4, 64, "fused", fused)])))
    seen = []
    real = layers.decode_attention_prep
    monkeypatch.setattr(layers, "decode_attention_prep", lambda *a, **kw: seen.append(a[-1]) or real(*a, **kw))
    assert _decode_configs(model, monkeypatch, batch=3, max_len=64) == [] and seen == [fused, fused]
    seen.clear()
    assert _decode_configs(model, monkeypatch, batch=1, max_len=32) == [GROUP, GROUP] and seen == []


def test_a_table_without_attention_leaves_the_model_as_it_was(monkeypatch):
    """Every layer launches the plan (config None), with no table and with a table of linear ops only. At
    this short cache the plan from the qkv rows loads K/V early with prep fused (decode_attention_prep,
    one launch); with KERNEL_SEARCH_ATTN_PREP=separate the prep kernel runs, then decode_attention."""
    model = random_weights(TINY, torch.float32, DEVICE, seed=0)
    seen = []
    real = layers.decode_attention_prep
    monkeypatch.setattr(layers, "decode_attention_prep", lambda *a, **kw: seen.append(a[-1]) or real(*a, **kw))
    assert _decode_configs(model, monkeypatch) == [] and seen == [None, None]
    model.set_dispatcher(quiet(table_dict(model.op_shapes(), LINEAR)))
    assert _decode_configs(model, monkeypatch) == [] and seen == [None] * 4
    monkeypatch.setenv("KERNEL_SEARCH_ATTN_PREP", "separate")
    assert _decode_configs(model, monkeypatch) == [None, None] and seen == [None] * 4
    # Where the plan is the loop plan (here by KERNEL_SEARCH_ATTN_EARLY=0), prep stays separate.
    monkeypatch.delenv("KERNEL_SEARCH_ATTN_PREP")
    monkeypatch.setenv("KERNEL_SEARCH_ATTN_EARLY", "0")
    assert _decode_configs(model, monkeypatch) == [None, None] and seen == [None] * 4


def test_the_model_looks_up_per_batch_and_cache_and_a_set_config_wins(monkeypatch):
    model = random_weights(TINY, torch.float32, DEVICE, seed=0)
    model.set_dispatcher(quiet(attention_table(BUCKETS)))
    assert _decode_configs(model, monkeypatch, batch=1, max_len=30) == [HEAD, HEAD]
    assert _decode_configs(model, monkeypatch, batch=3, max_len=64) == [GROUP, GROUP]
    assert model.attention_choice(3).config == GROUP and "M=4 ctx=64" in model.attention_choice(3).reason
    model.set_attention_config(HEAD)  # an explicit config overrides the table
    assert _decode_configs(model, monkeypatch, batch=3, max_len=64) == [HEAD, HEAD]
    assert model.attention_choice(3).reason == "set_attention_config"
    model.set_attention_config(None)  # back to the table
    assert _decode_configs(model, monkeypatch, batch=3, max_len=64) == [GROUP, GROUP]
    model.set_dispatcher(Dispatcher())  # another dispatcher: its (empty) table, so the plan, here prep fused
    assert _decode_configs(model, monkeypatch, batch=3, max_len=64) == []
    monkeypatch.setenv("KERNEL_SEARCH_ATTN_PREP", "separate")
    assert _decode_configs(model, monkeypatch, batch=3, max_len=64) == [None, None]


def test_a_plan_bucket_runs_the_default_plan_where_the_step_check_put_it():
    ops = quiet(attention_table([(1, 32, "fused", HEAD), (4, 32, "plan", {}), (4, 64, "fused", GROUP)]))
    choice = ops.choose_attention(problem(3, 20))
    assert choice.arm == "plan" and "the step check found it faster" in choice.reason
    assert ops.attention_config(problem(3, 20)) is None  # the launcher's default plan
    assert ops.attention_config(problem(1, 20)) == HEAD and ops.attention_config(problem(3, 40)) == GROUP
