"""Decode attention through the whole pipeline on the CPU (Triton's interpreter), qwen3-tiny: `tune --op
decode_attention` fills studies and winners per (batch, context), `export` writes them as table entries,
`import` takes them back, and a model loaded with the table decodes with the config it looks up."""

import json
import warnings

import pytest
import torch

from kernel_space.attention_shape import encode_m
from qwen3.config import PRESETS
from qwen3.dispatch import Dispatcher
from qwen3.generate import Generator
from qwen3.loader import random_weights
from storage import Store, load_table
from storage.queries import winners_frame
from tests.conftest import requires_interpreter
from tests.tuner.test_tune_loop import counts, run_cli

TINY = PRESETS["qwen3-tiny"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """Four studies: batches 1 and 2 over 32 and 64 cache slots, 4 configs each."""
    folder = tmp_path_factory.mktemp("attention")
    db = f"sqlite:///{folder / 'ks.db'}"
    proc = run_cli("tune", "--model", "qwen3-tiny", "--op", "decode_attention", "--buckets", "1,2",
                   "--contexts", "32,64", "--trials", "4", "--batch", "4", db=db)
    table = folder / "table.json"
    run_cli("export", "--model", "qwen3-tiny", "--dtype", "float16", "-o", str(table), db=db)
    return db, proc, table


def test_tune_covers_every_batch_and_context_with_a_winner(tuned):
    db, proc, _ = tuned
    assert "tuned 4 studies of qwen3-tiny" in proc.stdout
    assert "decode_attention      M=2 ctx=64" in proc.stderr
    studies, trials, winners = counts(db)
    assert studies == 4 and winners == 4 and trials >= 4 * 3
    with Store(db) as store:
        frame = winners_frame(store, op="decode_attention")
    assert sorted(zip(frame["m"], frame["context"], strict=True)) == [(1, 32), (1, 64), (2, 32), (2, 64)]
    assert frame["cublas_us"].isna().all() and (frame["unfused_us"] > 0).all()


def test_the_table_holds_attention_keyed_by_batch_and_context(tuned, tmp_path):
    db, _, path = tuned
    table = load_table(path)
    assert set(table.ops) == {"decode_attention"}
    entry = table.ops["decode_attention"]
    assert (entry.n, entry.k) == (4002, 16)
    assert [b.m for b in entry.buckets] == [encode_m(1, 32), encode_m(2, 32), encode_m(1, 64), encode_m(2, 64)]
    raw = json.loads(path.read_text())["ops"]["decode_attention"]
    assert (raw["heads"], raw["kv_heads"], raw["head_dim"]) == (4, 2, 16)
    assert [(b["batch"], b["context"]) for b in raw["buckets"]] == [(1, 32), (2, 32), (1, 64), (2, 64)]
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert "1 ops, 4 buckets; winners 4 added" in run_cli("import", str(path), db=other).stdout
    with Store(other) as store:
        frame = winners_frame(store)
    assert sorted(zip(frame["m"], frame["context"], strict=True)) == [(1, 32), (1, 64), (2, 32), (2, 64)]


def _fused_table(path, tmp_path) -> tuple[dict, dict]:
    """The exported table with its (batch 2, context 64) bucket made fused with a runnable config other
    than the default plan, so that the test can tell the looked-up config from the plan."""
    data = json.loads(path.read_text())
    cfg = {"impl": "fused", "SPLITS": 2, "BLOCK_N": 16, "pack": "head", "combine": "last_program", "num_warps": 2,
           "num_stages": 1}
    bucket = next(b for b in data["ops"]["decode_attention"]["buckets"] if (b["batch"], b["context"]) == (2, 64))
    bucket.update(arm="fused", config=cfg, speedup=1.5)
    return data, cfg


@requires_interpreter  # a model on the CPU, running the CPU tune's table through Triton
def test_a_model_decodes_with_the_looked_up_config(tuned, tmp_path, monkeypatch):
    """Batch 2 over a 40-slot cache is served by the (2, 64) bucket; the Triton kernel gets its config at
    every layer and step, and its logits match PyTorch's attention."""
    import qwen3.layers as layers

    _, _, path = tuned
    data, cfg = _fused_table(path, tmp_path)
    seen = []
    real = layers.decode_attention
    monkeypatch.setattr(layers, "decode_attention", lambda *a, **kw: seen.append(a[-1]) or real(*a, **kw))
    model = random_weights(TINY, torch.float16, "cpu", seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the interpreter's fingerprint: no hardware warning here
        model.set_dispatcher(Dispatcher(data))
    model.set_attention_impl("triton")
    gen = Generator(model, max_batch=2, max_len=40, cuda_graphs=False)
    choice = model.attention_choice(2)
    assert (choice.arm, choice.config) == ("fused", cfg) and "M=2 ctx=64" in choice.reason
    prompts = [[5, 6, 7], [8, 9, 10]]
    fused_logits = gen.prefill(prompts)
    fused_step = gen.decode_step(fused_logits.argmax(-1), torch.tensor([3, 3]))
    assert seen and all(c == cfg for c in seen)  # every decode launch ran the table's config
    model.set_attention_impl("torch")
    model.allocate_kv_cache(2, 40)
    gen.prefill(prompts)
    torch_step = gen.decode_step(fused_logits.argmax(-1), torch.tensor([3, 3]))
    assert torch.allclose(fused_step.float(), torch_step.float(), atol=2e-2, rtol=2e-2)


@requires_interpreter  # a model on the CPU, running the CPU tune's table through Triton
def test_unfused_winners_run_sdpa_and_past_the_last_bucket_the_plan_runs(tuned, monkeypatch):
    """A bucket whose winner is SDPA (unfused): the lookup says unfused. A batch past the table's last
    one runs the default plan, said once. The CPU tune's winners are usually SDPA (the interpreter loses
    most A/Bs), but a fused config won one in a CI run: the buckets are set to SDPA here, as a tune
    whose every A/B lost writes them, so that the test does not depend on the interpreter's timing."""
    _, _, path = tuned
    data = json.loads(path.read_text())
    for bucket in data["ops"]["decode_attention"]["buckets"]:
        bucket.update(arm="unfused", config={"impl": "unfused"}, median_us=bucket["baseline_us"], speedup=1.0)
    model = random_weights(TINY, torch.float16, "cpu", seed=1)
    model.set_dispatcher(Dispatcher(load_table(data)))
    model.set_attention_impl("triton")
    model.allocate_kv_cache(4, 64)
    assert model.attention_choice(1).config == {"impl": "unfused"}
    assert model.model.layers[0].self_attn.attn.decode_config(2) == {"impl": "unfused"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert model.attention_choice(3).arm == "plan"
        assert model.model.layers[1].self_attn.attn.decode_config(4) is None  # the launcher's plan
    assert len(caught) == 1 and "batch 3 is past the last batch tuned at context 64 (2)" in str(caught[0].message)
