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
def rings(once):
    return once("aot_rings", lambda _: aot_report("aot_rings.py"))


def test_the_smem_estimate_is_what_triton_asks_for(rings):
    """spec.smem_bytes against the compiled kernel's own figure: within its 512 B margin on every tl.dot
    case (one buffer of x over on the short rings, which are refused); on the FMA path a reduction's
    scratch, far under any limit."""
    from kernel_space.spec import DEFAULT_SMEM_LIMIT, smem_bytes

    for name, (op, _m, _n, k, cfg) in CASES.items():
        spec = ks.get_op(op)
        gain = spec.gain and cfg["prologue"] != "prepass"
        asked, est = rings[name]["shared"], smem_bytes(cfg, 2, spec.gated, 1, k, gain)
        if cfg["path"] == "fma":
            assert asked <= DEFAULT_SMEM_LIMIT // 4, name
            continue
        if name.startswith("inline_wgmma"):
            asked += cfg["BLOCK_M"] * cfg["BLOCK_K"] * 2
        assert asked <= est <= asked + 512, (name, est, asked)


def test_the_check_refuses_exactly_the_short_rings(rings):
    # The rings in order: W (twice when gated), then x, then the gain's.
    x_ring = {name: r["rings"][2 if "gated" in name else 1] for name, r in rings.items() if r["rings"]}
    short = {name for name, r in rings.items()
             if r["wgmma"] and r["x_from_ring"] and name in x_ring and x_ring[name] < r["rings"][0]}
    assert short == {"inline_wgmma", "inline_wgmma_gated_two_stages"}
    assert x_ring["lm_head_inline_wgmma"] < rings["lm_head_inline_wgmma"]["rings"][0]  # short, and harmless:
    assert not rings["lm_head_inline_wgmma"]["x_from_ring"]  # the MMA takes x from registers
    assert rings["inline_wgmma_gated_two_stages"]["rings"][-1] == 1  # two stages: x in one buffer
    assert not rings["inline_mma_sync"]["wgmma"] and not rings["inline_two_warps"]["wgmma"]
    for name, (op, m, n, k, cfg) in CASES.items():
        why = ks.get_op(op).check({"impl": "fused", **cfg}, m, n, k, 2)
        refused = why is not None and "buffer too few" in why
        assert refused == (name in short), (name, why)
        assert why is None or refused, (name, why)  # every case is otherwise a valid config
