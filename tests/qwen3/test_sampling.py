"""Sampling: greedy, temperature, top-k, top-p, seeds."""

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


@pytest.mark.parametrize("kw", [dict(temperature=-1.0), dict(top_k=-1), dict(top_p=0.0), dict(top_p=1.5)])
def test_bad_parameters(kw):
    with pytest.raises(ValueError):
        SamplingParams(**kw)
