"""The model folding decode attention's combine into o_proj at batch 1 (qwen3.dispatch.FOLD_ENV,
kernel_space.combine_o_proj): the same tokens as the attention's own combine, and where it applies."""

from dataclasses import replace

import pytest
import torch

import qwen3.dispatch as dispatch
from qwen3.dispatch import FOLD_ENV, Dispatcher
from qwen3.loader import random_weights
from qwen3.model import STREAM_ENV
from storage.table import load_table
from tests.conftest import requires_gpu, requires_interpreter
from tests.qwen3.helpers import DOT, FMA_M1, TINY, table_dict
from tests.qwen3.test_model import run_sequence

# Four splits of 16 slots: a 40-token prompt's decode steps use three of them, so the attention leaves
# partials (the plan would not split a cache this short).
SPLIT = {"impl": "fused", "SPLITS": 4, "BLOCK_N": 16, "pack": "group", "combine": "last_program", "num_warps": 2,
         "num_stages": 1, "prep": "fused", "kv": "early"}


def _tables(model):
    table = load_table(table_dict(model.op_shapes(), [(1, "fused", FMA_M1), (16, "fused", DOT)], dtype="float16"))
    return table, replace(table, fold=(1,))


def test_the_fold_follows_the_table_at_batch_one(monkeypatch):
    table, folding = _tables(random_weights(TINY, torch.float16, "cpu", 0))
    monkeypatch.delenv(FOLD_ENV, raising=False)
    assert [Dispatcher(folding).folds(b) for b in (1, 2)] == [True, False]
    assert not Dispatcher(table).folds(1) and not Dispatcher().folds(1)
    monkeypatch.setenv(FOLD_ENV, "on")  # asked for by name: with or without a table, batch 1 only
    assert Dispatcher().folds(1) and Dispatcher(table).folds(1) and not Dispatcher(table).folds(8)
    monkeypatch.setenv(FOLD_ENV, "off")
    assert not Dispatcher(folding).folds(1)
    monkeypatch.setenv(FOLD_ENV, "yes")
    with pytest.raises(ValueError, match="KERNEL_SEARCH_FOLD must be one of auto, on, off, got 'yes'"):
        Dispatcher(folding).folds(1)


@requires_interpreter
@pytest.mark.parametrize(("stream", "prep"), [("fixed", "fused"), ("model", "separate")])  # each stream, each prep
def test_a_folding_table_decodes_the_same_tokens(stream, prep, monkeypatch):
    """fp16 weights; every batch-1 decode step of every layer runs combine_o_proj where the table folds,
    with the same tokens and logits within fp16 noise of the attention's own combine; the prefill and
    batch 2 never fold."""
    half = random_weights(TINY, torch.float16, "cpu", 0)
    half.set_attention_impl("triton")  # the decode attention kernels on CPU tensors (the interpreter)
    table, folding = _tables(half)
    cfg = dict(SPLIT, prep=prep, kv="early" if prep == "fused" else "loop")
    prompt = torch.randint(0, TINY.vocab_size, (1, 40), generator=torch.Generator().manual_seed(4))
    monkeypatch.setenv(STREAM_ENV, stream)
    monkeypatch.delenv(FOLD_ENV, raising=False)
    half.set_dispatcher(Dispatcher(table))
    half.set_attention_config(cfg)
    ref, ref_tokens = run_sequence(half, prompt, 2)  # positions 40 and 41: three of the four splits

    calls = []
    real = dispatch.o_proj_residual_combined
    monkeypatch.setattr(dispatch, "o_proj_residual_combined", lambda *a, **kw: calls.append(a[1].dtype)
                        or real(*a, **kw))
    half.set_dispatcher(Dispatcher(folding))
    half.set_attention_config(cfg)
    out, tokens = run_sequence(half, prompt, 2)
    assert calls == [{"model": torch.float16, "fixed": torch.int64}[stream]] * (2 * TINY.num_hidden_layers)
    assert torch.equal(tokens, ref_tokens)
    err = max(((a.float() - b.float()).abs().max() / b.float().abs().max()).item()
              for a, b in zip(out, ref, strict=True))
    assert err < 5e-3

    calls.clear()
    run_sequence(half, prompt[:, :20].repeat(2, 1), 1)  # batch 2: the attention combines
    assert calls == []


@requires_gpu
@pytest.mark.parametrize("stream", ["model", "fixed"])
def test_the_fold_in_the_cuda_graph_decode(stream, monkeypatch):
    """bf16 on the GPU, the decode steps replayed from CUDA graphs: the fold's logits within bf16 noise
    of the attention's own combine."""
    model = random_weights(TINY, torch.bfloat16, "cuda", 0)
    table = load_table(table_dict(model.op_shapes(), [(1, "fused", FMA_M1), (16, "fused", DOT)], dtype="bfloat16"))
    prompt = torch.randint(0, TINY.vocab_size, (1, 40), generator=torch.Generator().manual_seed(4))
    monkeypatch.setenv(STREAM_ENV, stream)
    out = {}
    for fold in ("off", "on"):
        monkeypatch.setenv(FOLD_ENV, fold)
        model.set_dispatcher(Dispatcher(table))
        model.set_attention_config(SPLIT)
        out[fold], _ = run_sequence(model, prompt, 3)
    err = max(((a.float() - b.float()).abs().max() / b.float().abs().max()).item()
              for a, b in zip(out["on"], out["off"], strict=True))
    assert err < 2e-2
