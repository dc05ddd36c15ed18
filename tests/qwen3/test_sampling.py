"""Sampling: greedy, temperature, top-k, top-p, seeds."""

import math

import pytest
import torch

from qwen3.generate import SamplingParams, sample

LOGITS = torch.tensor([[2.0, 1.0, 0.5, -1.0, 0.0], [0.0, 0.1, 3.0, 2.9, -5.0]])


def draws(params, n=400, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([sample(LOGITS, params, gen) for _ in range(n)])


def test_greedy_is_argmax():
    assert sample(LOGITS, SamplingParams()).tolist() == [0, 2]


def test_top_k_and_top_p_keep_only_the_head():
    assert set(draws(SamplingParams(temperature=1.0, top_k=2))[:, 0].tolist()) == {0, 1}
    # Row 1: tokens 2 and 3 hold ~97% of the mass; top_p 0.9 keeps exactly those two.
    assert set(draws(SamplingParams(temperature=1.0, top_p=0.9))[:, 1].tolist()) == {2, 3}
    assert set(draws(SamplingParams(temperature=1.0, top_k=1)).flatten().tolist()) <= {0, 2}


def test_temperature_spreads_and_seeds_repeat():
    hot = draws(SamplingParams(temperature=5.0))
    assert len(set(hot[:, 0].tolist())) == 5
    assert torch.equal(hot, draws(SamplingParams(temperature=5.0)))
    assert not torch.equal(hot, draws(SamplingParams(temperature=5.0), seed=1))


@pytest.mark.parametrize("kw", [dict(temperature=-1.0), dict(temperature=float("nan")), dict(temperature=math.inf),
                                dict(top_k=-1), dict(top_p=0.0), dict(top_p=1.5), dict(top_p=float("nan"))])
def test_bad_parameters(kw):
    with pytest.raises(ValueError):
        SamplingParams(**kw)


@pytest.mark.parametrize("bad", [float("nan"), math.inf])
def test_logits_that_are_not_finite_are_refused_before_sampling(bad):
    """On a GPU, multinomial over a NaN row asserts on the device and the process's CUDA context is lost;
    sample refuses such logits with a ValueError on every device (greedy's argmax takes them)."""
    logits = LOGITS.clone()
    logits[1, 3] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        sample(logits, SamplingParams(temperature=1.0), torch.Generator().manual_seed(0))
    assert sample(logits, SamplingParams()).shape == (2,)
