"""The evidence for spec.inline_ring_short, compiled for sm_90 with Triton's own compiler (no GPU): a norm
op's inline prologue on a warpgroup-MMA tile with a pipelined K loop gets an activation ring shallower
than its weight ring (the MMA reads x from shared memory asynchronously, so the next x copy lands in a
buffer it may still read); rescan, prepass, mma.sync tiles and the non-norm ops get full rings. The
check refuses exactly the short-ring cases. If a Triton upgrade allocates the ring right, this test
fails, and the rule can go."""

import pytest

import kernel_space as ks
from tests.kernel_space.aot_rings import CASES
from tests.kernel_space.aot_run import aot_report


@pytest.fixture(scope="module")
def rings():
    return aot_report("aot_rings.py")


def test_the_check_refuses_exactly_the_short_rings(rings):
    short = {name for name, r in rings.items() if r["wgmma"] and r["rings"] and min(r["rings"]) < max(r["rings"])}
    assert short == {"inline_wgmma", "inline_wgmma_gated_two_stages"}
    assert rings["inline_wgmma_gated_two_stages"]["rings"][-1] == 1  # two stages: x in one buffer
    assert not rings["inline_mma_sync"]["wgmma"] and not rings["inline_two_warps"]["wgmma"]
    for name, (op, m, n, k, cfg) in CASES.items():
        why = ks.get_op(op).check({"impl": "fused", **cfg}, m, n, k, 2)
        refused = why is not None and "buffer too few" in why
        assert refused == (name in short), (name, why)
        assert why is None or refused, (name, why)  # every case is otherwise a valid config
