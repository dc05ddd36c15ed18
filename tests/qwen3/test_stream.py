"""The model with its residual stream in fp32 or fixed point (qwen3.model.STREAM_ENV) against the
model-dtype stream and the same weights in fp32: fp16 weights on the CPU (the interpreter's bf16 tl.dot
is wrong)."""

import pytest
import torch

import qwen3.dispatch as dispatch
from kernel_space.prefill import PREFILL_ROWS
from qwen3.dispatch import Dispatcher
from qwen3.loader import random_weights
from qwen3.model import STREAM_ENV, stream_dtype
from tests.conftest import requires_interpreter
from tests.qwen3.helpers import DOT, FMA_M1, TINY, table_dict
from tests.qwen3.test_model import run_sequence


def test_the_stream_widens_below_the_prefill_rows_when_asked(monkeypatch):
    x = torch.zeros(PREFILL_ROWS - 1, 8, dtype=torch.float16)
    one = torch.zeros(1, 8, dtype=torch.float16)
    monkeypatch.delenv(STREAM_ENV, raising=False)  # "auto": fixed point in batch-1 decode only
    assert stream_dtype(x) is None and stream_dtype(one) == torch.int64 and stream_dtype(one.float()) is None
    assert stream_dtype(one, tabled=False) is None  # the unfused baseline stays a plain model
    monkeypatch.setenv(STREAM_ENV, "auto")
    assert stream_dtype(x) is None and stream_dtype(one) == torch.int64
    for value, dtype in (("fp32", torch.float32), ("fixed", torch.int64)):
        monkeypatch.setenv(STREAM_ENV, value)
        assert stream_dtype(x) == dtype and stream_dtype(torch.zeros(PREFILL_ROWS, 8, dtype=torch.float16)) is None
        assert stream_dtype(x, tabled=False) == dtype  # asked for by name: with or without a table
        assert stream_dtype(x.float()) is None  # an fp32 model's stream is fp32 already
    monkeypatch.setenv(STREAM_ENV, "model")
    assert stream_dtype(x) is None and stream_dtype(one) is None
    monkeypatch.setenv(STREAM_ENV, "float32")
    with pytest.raises(ValueError, match="KERNEL_SEARCH_STREAM must be one of auto, model, fp32, fixed, got 'float32'"):
        stream_dtype(x)


def _errors(model, truth, prompt, steps=3):
    """The relative error of every step's logits against the truth's, and whether the tokens agree."""
    out, tokens = run_sequence(model, prompt, steps)
    ref, ref_tokens = run_sequence(truth, prompt, steps)
    err = max(((a.float() - b).abs().max() / b.abs().max()).item() for a, b in zip(out, ref, strict=True))
    return err, torch.equal(tokens, ref_tokens)


@requires_interpreter
@pytest.mark.parametrize("fused", [True, False], ids=["table", "unfused"])
@pytest.mark.parametrize("wide", ["fp32", "fixed"])
def test_a_wide_stream_decodes_as_close_to_fp32_as_the_model_dtype_stream(fused, wide, monkeypatch):
    """fp16 weights, a table of fused configs (split-K 2 at M = 1: the stream takes atomics) or none; the
    residual sites add into the stream in place at every layer of every forward (all below the prefill
    rows here), and the logits stay within fp16 noise of the same weights run in fp32."""
    half = random_weights(TINY, torch.float16, "cpu", 0)
    if fused:
        table = table_dict(half.op_shapes(), [(1, "fused", dict(FMA_M1, split_reduce="last_program")),
                                              (16, "fused", DOT)], dtype="float16")
        half.set_dispatcher(Dispatcher(table))
    truth = random_weights(TINY, torch.float16, "cpu", 0).float()
    prompt = torch.randint(0, TINY.vocab_size, (2, 5), generator=torch.Generator().manual_seed(2))
    monkeypatch.setenv(STREAM_ENV, "model")
    base_err, base_same = _errors(half, truth, prompt)

    calls = []
    for name in ("o_proj_residual", "down_residual", "o_proj_residual_unfused", "down_residual_unfused"):
        real = getattr(dispatch, name)
        monkeypatch.setattr(dispatch, name, lambda *a, real=real, name=name, **kw:
                            calls.append((name, a[1].dtype, a[-1] is True)) or real(*a, **kw))
    monkeypatch.setenv(STREAM_ENV, wide)
    err, same = _errors(half, truth, prompt)
    monkeypatch.delenv(STREAM_ENV)
    # Prefill and three decode steps, two sites a layer; the truth (fp32 weights) never widens.
    sites = 2 * TINY.num_hidden_layers * 4
    widened = [c for c in calls if c[1] == {"fp32": torch.float32, "fixed": torch.int64}[wide] and c[2]]
    assert len(widened) == sites and all(c[0].endswith("_unfused") != fused for c in widened)
    assert base_same and same
    assert base_err < 5e-3 and err < 5e-3


@requires_interpreter
def test_batch_one_decode_takes_the_fixed_point_stream_by_default(monkeypatch):
    """Unset, a forward of one row (batch-1 decode, or a one-token prompt) runs the fixed-point stream and
    any other the model's dtype: the same tokens as "model", logits within fp16 noise."""
    half = random_weights(TINY, torch.float16, "cpu", 0)
    table = table_dict(half.op_shapes(), [(1, "fused", FMA_M1), (16, "fused", DOT)], dtype="float16")
    half.set_dispatcher(Dispatcher(table))
    calls = []
    real = dispatch.o_proj_residual
    monkeypatch.setattr(dispatch, "o_proj_residual", lambda *a, **kw: calls.append((a[0].shape[0], a[1].dtype))
                        or real(*a, **kw))
    prompt = torch.randint(0, TINY.vocab_size, (1, 4), generator=torch.Generator().manual_seed(3))
    monkeypatch.delenv(STREAM_ENV, raising=False)
    out, tokens = run_sequence(half, prompt, 1)
    assert {rows: dtype for rows, dtype in calls} == {4: torch.float16, 1: torch.int64}
    monkeypatch.setenv(STREAM_ENV, "model")
    ref, ref_tokens = run_sequence(half, prompt, 1)
    assert torch.equal(tokens, ref_tokens)
    err = [((a.float() - b.float()).abs().max() / b.float().abs().max()).item() for a, b in zip(out, ref, strict=True)]
    assert max(err) < 5e-3


@requires_interpreter
@pytest.mark.parametrize("stream", ["model", "auto", "fixed"])
def test_a_nan_in_the_stream_gives_nan_logits(stream, monkeypatch):
    """A token whose embedding holds a NaN, decoded at batch 1 with a table: NaN logits in the
    fixed-point stream (auto's, at one row) as in the model-dtype one, not finite garbage; the prompt's
    logits before it are finite but the NaN token's own (TINY ties the LM head to the embedding)."""
    from qwen3.generate import Generator

    half = random_weights(TINY, torch.float16, "cpu", 0)
    table = table_dict(half.op_shapes(), [(1, "fused", dict(FMA_M1, split_reduce="last_program")),
                                          (16, "fused", DOT)], dtype="float16")
    half.set_dispatcher(Dispatcher(table))
    bad = 7
    with torch.no_grad():
        half.model.embed_tokens.weight[bad, 3] = float("nan")
    monkeypatch.setenv(STREAM_ENV, stream)
    gen = Generator(half, max_batch=1, max_len=8)
    first = gen.prefill([[1, 2, 3]])
    assert first.isnan().nonzero().tolist() == [[0, bad]]
    logits = gen.decode_step(torch.tensor([bad]), torch.tensor([3]))
    assert logits.isnan().all()


def test_auto_follows_the_stream_the_table_chose(monkeypatch):
    """A table's "stream" (its step check's verdict per batch, looked up by interval) decides auto's
    stream; past its last batch, or in a table without one, the rule (fixed point at one row) does; a
    value set by name overrides it."""
    from dataclasses import replace

    from storage.table import load_table

    shapes = random_weights(TINY, torch.float16, "cpu", 0).op_shapes()
    plain = load_table(table_dict(shapes, [(1, "fused", FMA_M1), (16, "fused", DOT)], dtype="float16"))
    table = replace(plain, stream=((1, "model"), (8, "fixed")))
    monkeypatch.delenv(STREAM_ENV, raising=False)
    chosen = {rows: stream_dtype(torch.zeros(rows, 8, dtype=torch.float16), True, table) for rows in (1, 2, 8, 9)}
    assert chosen == {1: None, 2: torch.int64, 8: torch.int64, 9: None}
    assert stream_dtype(torch.zeros(1, 8, dtype=torch.float16), True, plain) == torch.int64
    assert stream_dtype(torch.zeros(8, 8, dtype=torch.float16), False, table) is None  # no table runs
    monkeypatch.setenv(STREAM_ENV, "fixed")
    assert stream_dtype(torch.zeros(1, 8, dtype=torch.float16), True, table) == torch.int64
    monkeypatch.setenv(STREAM_ENV, "model")
    assert stream_dtype(torch.zeros(8, 8, dtype=torch.float16), True, table) is None


@requires_interpreter
def test_a_table_that_chose_the_model_dtype_keeps_it_at_batch_one(monkeypatch):
    from dataclasses import replace

    from storage.table import load_table

    half = random_weights(TINY, torch.float16, "cpu", 0)
    table = load_table(table_dict(half.op_shapes(), [(1, "fused", FMA_M1), (16, "fused", DOT)], dtype="float16"))
    half.set_dispatcher(Dispatcher(replace(table, stream=((1, "model"),))))
    calls = []
    real = dispatch.o_proj_residual
    monkeypatch.setattr(dispatch, "o_proj_residual", lambda *a, **kw: calls.append((a[0].shape[0], a[1].dtype))
                        or real(*a, **kw))
    monkeypatch.delenv(STREAM_ENV, raising=False)
    run_sequence(half, torch.randint(0, TINY.vocab_size, (1, 4), generator=torch.Generator().manual_seed(3)), 1)
    assert {rows: dtype for rows, dtype in calls} == {4: torch.float16, 1: torch.float16}


def test_bench_says_which_stream_the_table_arm_keeps(monkeypatch):
    from dataclasses import replace

    from qwen3.model import describe_streams
    from storage.table import load_table

    shapes = random_weights(TINY, torch.float16, "cpu", 0).op_shapes()
    plain = load_table(table_dict(shapes, [(1, "fused", FMA_M1), (16, "fused", DOT)], dtype="float16"))
    monkeypatch.delenv(STREAM_ENV, raising=False)
    chose = replace(plain, stream=((1, "model"), (8, "fixed")))
    assert describe_streams([8, 1, 32], chose) == \
        "the model dtype at batch 1, 32; fixed point at batch 8 (the table's choice)"
    assert describe_streams([1, 8], plain) == \
        "fixed point at batch 1; the model dtype at batch 8 (a table without a choice: fixed point at batch 1)"
    assert describe_streams([1], None) == "the model dtype at batch 1 (no table)"
    assert describe_streams([1], plain, torch.float32) == "the model dtype at batch 1 (a table without a choice: " \
        "fixed point at batch 1)"  # an fp32 model's stream is fp32 already
    monkeypatch.setenv(STREAM_ENV, "fp32")
    assert describe_streams([1, 8], chose) == "fp32 at batch 1, 8 (KERNEL_SEARCH_STREAM=fp32)"
