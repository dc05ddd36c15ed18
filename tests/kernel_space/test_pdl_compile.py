"""The PDL variants compile for Hopper and carry the grid-dependency instructions; without PDL they
carry none. Compiled ahead of time for sm_90, no GPU needed: the PDL-on kernels through Triton's own
ptxas, the other modes to PTX only (aot_pdl.py)."""

import pytest

from tests.kernel_space.aot_run import aot_report


@pytest.fixture(scope="module")
def report(once):
    # One process; the modes after "on" stop at PTX (ptx_only, in a Triton cache of its own).
    return once("aot_pdl", lambda _: aot_report("aot_pdl.py", "on", "off", "early"))


def test_every_kernel_waits_then_releases_the_next_with_pdl(report):
    on = report[0]
    for name, found in on.items():
        assert found["wait"] and found["launch"] and not found["launch_first"], name
    # The GEMM prefetches its weights (gated: both halves), the attention kernels their K and V chunk
    # where the launcher asks (PREFETCH); nothing else prefetches.
    assert on["fused_linear"]["prefetch"] >= 2 and on["fused_linear_64"]["prefetch"] >= 2
    assert on["decode_attention"]["prefetch"] >= 2 and on["decode_attention_head_last"]["prefetch"] >= 2
    prefetching = ("fused_linear", "decode_attention", "decode_attention_head_last")
    assert all(found["prefetch"] == 0 for name, found in on.items() if not name.startswith(prefetching))
    assert on["decode_attention_prep"]["prefetch"] == 0
    assert on["fused_linear_one_block"]["prefetch"] == 0  # its one block is loaded, not prefetched
    # kv=early: the K and V block is loaded into registers before the wait (the position too), also where
    # the chunk's other blocks follow after it (early_rest); the loop kernels read nothing before it but
    # the position that aims their prefetch.
    for name in ("decode_attention_early", "decode_attention_prep_early", "decode_attention_early_rest",
                 "decode_attention_prep_early_rest"):
        assert on[name]["loads_first"] >= 3 and on[name]["prefetch"] == 0, name
    assert on["decode_attention_prep"]["loads_first"] == 0 and on["decode_attention"]["loads_first"] <= 1


def test_without_pdl_no_kernel_has_grid_dependency_instructions(report):
    off = report[1]
    for name, found in off.items():
        assert not found["wait"] and not found["launch"] and found["prefetch"] == 0, name


def test_the_early_trigger_releases_the_next_kernel_before_the_wait(report):
    """KERNEL_SEARCH_PDL_TRIGGER=early (PDL=PDL_EARLY): every kernel lets the next one launch before its
    own wait, and still waits; the default releases it after."""
    early = report[2]
    assert early.keys() == report[1].keys() and early.keys() <= report[0].keys()  # the 64-bit ones: PDL on only
    for name, found in early.items():
        assert found["wait"] and found["launch"] and found["launch_first"], name


def test_the_trigger_setting_picks_the_pdl_constexpr(monkeypatch):
    import torch

    from kernel_space import _gemm

    monkeypatch.setattr(_gemm, "_properties", lambda device: (9, 132, 50 << 20))
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv("KERNEL_SEARCH_PDL", raising=False)
    gpu = torch.device("cuda", 0)
    monkeypatch.delenv("KERNEL_SEARCH_PDL_TRIGGER", raising=False)
    assert _gemm.pdl_launch_args(gpu)["PDL"] is True
    monkeypatch.setenv("KERNEL_SEARCH_PDL_TRIGGER", "early")
    assert _gemm.pdl_launch_args(gpu, 8, 1 << 20)["PDL"] == _gemm.PDL_EARLY.value == 2
    monkeypatch.setenv("KERNEL_SEARCH_PDL_TRIGGER", "soon")
    with pytest.raises(ValueError, match="KERNEL_SEARCH_PDL_TRIGGER must be wait or early"):
        _gemm.pdl_launch_args(gpu)


def test_index_64_moves_the_gemm_offsets_to_64_bit_and_only_then(report):
    """INDEX_64 compiles for sm_90 and multiplies offsets in 64 bits; off, no 64-bit multiply is left
    (the decode kernels keep their int32 arithmetic). The 64-bit variants are compiled with PDL on only."""
    for found in report:
        for name in ("fused_linear", "splitk_epilogue", "prepass"):
            assert found[name]["mul_s64"] == 0, name
    for name in ("fused_linear", "splitk_epilogue", "prepass"):
        assert report[0][f"{name}_64"]["mul_s64"] > 0, name


def test_a_wide_split_reduce_compiles_as_a_loop_of_chunks(report):
    """A 64 x 128 gated tile over 16 splits compiles for sm_90 with no more partial loads in its code than
    the 2-split reducer has unrolled (one chunk of 2 splits in a loop), not 16 splits unrolled (17 s of
    compile on the H100 machine's host, for a kernel that spilled)."""
    found = report[0]  # compiled with PDL on only
    assert found["reduce_wide_2"]["cg_loads"] > 0
    assert 0 < found["reduce_wide_16"]["cg_loads"] <= found["reduce_wide_2"]["cg_loads"]


def test_a_large_gemm_grid_over_large_weights_launches_without_pdl(monkeypatch):
    """pdl_launch_args on a (pretended) Hopper of 132 SMs and 50 MB of L2: a GEMM grid of up to 264
    programs launches with PDL and prefetches its weights; a larger one too over weights of at most
    half of L2 (Qwen3-0.6B's), without PDL over more (8B's; both measured faster), unless
    KERNEL_SEARCH_PDL=all; launches that give no grid (attention, the prepass) keep PDL;
    KERNEL_SEARCH_PDL=0 turns it off everywhere."""
    import torch

    from kernel_space import _gemm

    monkeypatch.setattr(_gemm, "_properties", lambda device: (9, 132, 50 << 20))
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv("KERNEL_SEARCH_PDL", raising=False)
    gpu, big, small = torch.device("cuda", 0), 100 << 20, 25 << 20
    pdl = {"PDL": True, "launch_pdl": True}
    assert _gemm.pdl_launch_args(gpu, 264, big) == {**pdl, "PREFETCH": True}
    assert _gemm.pdl_launch_args(gpu, 265, big) == {}
    assert _gemm.pdl_launch_args(gpu, 265, small) == {**pdl, "PREFETCH": False}
    assert _gemm.pdl_launch_args(gpu) == pdl
    monkeypatch.setenv("KERNEL_SEARCH_PDL", "all")
    assert _gemm.pdl_launch_args(gpu, 265, big) == {**pdl, "PREFETCH": False}
    monkeypatch.setenv("KERNEL_SEARCH_PDL", "0")
    assert _gemm.pdl_launch_args(gpu, 8, small) == {} and _gemm.pdl_launch_args(gpu) == {}
    assert _gemm.pdl_launch_args(torch.device("cpu"), 8) == {}
