"""The sizes of a fused-linear launch at the shapes that faulted on the H100 (issue 13): the offset
bound that turns on 64-bit indexing, the scratch the launcher allocates, the grid limits and the
refusals of check_config. Nothing here launches a kernel: big shapes go through meta tensors."""

import itertools

import numpy as np
import pytest
import torch

import kernel_space as ks
from kernel_space import _gemm
from kernel_space.geometry import GRID_X_MAX, GRID_YZ_MAX, INT32_MAX, LinearLaunch

# The 8B H100 table's (benchmarks/results/dispatch_qwen3-8b_H100.json) M = 32 gate_up config: the
# one `bench --batch 8 --prompt-len 8192` ran at the M = 65,536 prefill, where it faulted.
GATE_UP_M32 = dict(impl="fused", path="dot", BLOCK_M=32, BLOCK_N=128, BLOCK_K=64, SPLIT_K=4, num_warps=8,
                   num_stages=3, GROUP_M=1, split_reduce="last_program", prologue="prepass")
# Its M = 32 rmsnorm_qkv config (no split) and M = 8 down_residual config (split 8).
QKV_M32 = dict(impl="fused", path="dot", BLOCK_M=16, BLOCK_N=16, BLOCK_K=128, SPLIT_K=1, num_warps=2,
               num_stages=5, GROUP_M=1, split_reduce="kernel", prologue="prepass")
DOWN_M8 = dict(impl="fused", path="dot", BLOCK_M=16, BLOCK_N=64, BLOCK_K=128, SPLIT_K=8, num_warps=4,
               num_stages=4, GROUP_M=1, split_reduce="last_program", prologue="inline")
PREFILL_M = 65_536  # batch 8 x 8,192-token prompts
VOCAB = 151_936  # Qwen3's lm_head rows


def test_the_faulting_launch_needs_64_bit_offsets():
    launch = LinearLaunch.of(GATE_UP_M32, PREFILL_M, 12_288, 4096, gated=True)
    assert launch.partial_shape == (4, PREFILL_M, 24_576)
    faulted = 3 * PREFILL_M * 24_576  # split 3's partial slab: pid_k * M * width
    assert faulted > INT32_MAX and launch.max_offset() >= faulted
    assert launch.needs_int64
    assert launch.tiles == 2048 * 96 > _gemm.COUNTER_SLOTS


@pytest.mark.parametrize("cfg, n, k, gated", [(GATE_UP_M32, 12_288, 4096, True), (QKV_M32, 6144, 4096, False),
                                              (DOWN_M8, 4096, 12_288, False)])
@pytest.mark.parametrize("m", [1, 8, 32, 256, 4096])
def test_decode_and_tuned_prefill_sizes_keep_32_bit_offsets(cfg, n, k, gated, m):
    # The tuned buckets (decode up to 256, prefill up to 4096) at the 8B shapes run the int32 code.
    assert not LinearLaunch.of(cfg, m, n, k, gated).needs_int64


def test_lm_head_sized_output_passes_2_31_at_16k_tokens():
    assert not LinearLaunch.of(QKV_M32, 8192, VOCAB, 4096).needs_int64  # 1.24e9: int32 holds it
    launch = LinearLaunch.of(QKV_M32, 16_384, VOCAB, 4096)
    assert 16_384 * VOCAB > INT32_MAX and launch.needs_int64  # out[m, n] at m * N


def _brute_max_offset(launch: LinearLaunch) -> int:
    """Every offset the kernels form (masked lanes too), from their index formulas, in int64."""
    L = launch
    m = np.arange(L.tiles_m * L.block_m)[:, None]
    n = np.arange(L.tiles_n * L.block_n)[None, :]
    k = np.arange(L.split * L.k_per_split)[None, :]
    found = [(m * L.k + k).max(), ((n.T + (L.n if L.gated else 0)) * L.k + k).max(), (m * L.n + n).max()]
    if L.split > 1:
        s = np.arange(L.split)[:, None, None]
        found.append(((s * L.m + m[None]) * L.width + n[None] + (L.n if L.gated else 0)).max())
        pid_n = np.arange(L.tiles_n)[None, :, None]
        found.append(((s * L.tiles_n + pid_n) * L.m + m.T[None]).max())
    return int(max(found))


@pytest.mark.parametrize("m, n, k, bm, bn, bk, split, gated",
                         [(1, 37, 100, 1, 8, 32, 1, False), (17, 37, 136, 16, 32, 32, 4, False),
                          (5, 74, 100, 2, 16, 32, 2, True), (33, 8, 64, 32, 8, 64, 1, True),
                          (3, 300, 1000, 4, 64, 128, 8, True),
                          # partials dominate: wide N, short K
                          (40, 300, 64, 16, 64, 32, 2, True), (40, 300, 64, 16, 8, 32, 2, False)])
def test_max_offset_bounds_every_offset_the_kernels_form(m, n, k, bm, bn, bk, split, gated):
    launch = LinearLaunch(m, n, k, bm, bn, bk, split, gated)
    brute = _brute_max_offset(launch)
    # An upper bound, and a tight one: a row or two over (a 64-bit launch that did not need it is slower).
    assert brute <= launch.max_offset() <= brute + 2 * max(k, launch.width) + split * bk


def test_grid_limits_are_refused_with_a_reason():
    assert LinearLaunch(GRID_X_MAX, 4096, 4096, 1, 8, 64, 1).grid_problem().endswith(f"{GRID_X_MAX} in x")
    assert "pre-pass" in LinearLaunch(GRID_X_MAX + 1, 8, 64, 128, 8, 64, 1).grid_problem()
    reduce_y = LinearLaunch(16, 8 * (GRID_YZ_MAX + 1), 64, 16, 8, 32, 2)
    assert f"{GRID_YZ_MAX + 1} N tiles" in reduce_y.grid_problem()
    assert LinearLaunch(16, 8 * (GRID_YZ_MAX + 1), 64, 16, 8, 32, 1).grid_problem() is None  # no reduction
    assert LinearLaunch.of(GATE_UP_M32, PREFILL_M, 12_288, 4096, True).grid_problem() is None


def test_check_config_refuses_the_faulting_launch_for_its_scratch():
    spec = ks.get_op("rmsnorm_gate_up_silu")
    assert spec.check(GATE_UP_M32, 32, 24_576, 4096, 2) is None  # where it was tuned
    why = spec.check(GATE_UP_M32, PREFILL_M, 24_576, 4096, 2)
    assert why.startswith("split-K scratch of 25.8 GB (SPLIT_K=4 x M=65536 x 24576 fp32 partials)"), why
    # A card with 4x the memory may take it; one with a quarter refuses it sooner.
    assert ks.check_config(GATE_UP_M32, PREFILL_M, 12_288, 4096, elem_bytes=2, gated=True,
                           memory_bytes=320 * 10**9) is None
    assert "split-K scratch" in ks.check_config(GATE_UP_M32, 16_384, 12_288, 4096, elem_bytes=2, gated=True,
                                                memory_bytes=20 * 10**9)


def test_check_config_refuses_a_grid_past_cudas_limit():
    cfg = {**DOWN_M8, "path": "fma", "BLOCK_M": 1, "BLOCK_N": 8, "BLOCK_K": 32, "SPLIT_K": 2, "num_warps": 2}
    assert "grid limit of 65535 in y" in ks.check_config(cfg, 1, 8 * (GRID_YZ_MAX + 1), 4096, elem_bytes=2,
                                                         gated=False)


def _meta(*shape):
    return torch.empty(shape, device="meta", dtype=torch.bfloat16)


def test_launcher_sizes_scratch_and_counters_by_the_launch(monkeypatch):
    monkeypatch.setattr(_gemm, "_COUNTERS", {})
    monkeypatch.setattr(_gemm, "_RETIRED", [])
    x, w = _meta(PREFILL_M, 4096), _meta(24_576, 4096)
    plan = _gemm._plan(x, w, GATE_UP_M32, norm=True, gated=True)
    assert plan.index_64 and plan.prepass and not plan.norm and plan.last_reduces
    scratch = _gemm._allocate(x, _meta(PREFILL_M, 12_288), plan)
    assert scratch.a.shape == x.shape and scratch.a is not x  # the pre-pass output
    assert tuple(scratch.part.shape) == (4, PREFILL_M, 24_576) and scratch.part.dtype == torch.float32
    assert scratch.counts.numel() >= plan.launch.tiles == 196_608
    # An inline norm keeps one partial sum of squares per (split, N tile, row).
    inline = _gemm._plan(x, w, {**GATE_UP_M32, "prologue": "inline"}, norm=True, gated=True)
    assert tuple(_gemm._allocate(x, _meta(PREFILL_M, 12_288), inline).ss.shape) == (4, 96, PREFILL_M)
    # The decode launch of the same config stays on int32 offsets.
    assert not _gemm._plan(_meta(32, 4096), w, GATE_UP_M32, norm=True, gated=True).index_64


def test_launcher_refuses_a_grid_past_cudas_limit():
    cfg = {**QKV_M32, "path": "fma", "BLOCK_M": 1, "BLOCK_N": 8}
    with pytest.raises(ValueError, match=r"cannot launch the fused linear at M=2147483648, N=8, K=64: .* in x"):
        _gemm.launch_fused_linear(_meta(2**31, 64), _meta(8, 64), cfg)


def test_counters_grow_past_the_slot_count_and_stay_zeroed(monkeypatch):
    monkeypatch.setattr(_gemm, "_COUNTERS", {})
    monkeypatch.setattr(_gemm, "_RETIRED", [])
    cpu = torch.device("cpu")
    first = _gemm._counters(cpu, 10)
    assert first.numel() == _gemm.COUNTER_SLOTS
    assert _gemm._counters(cpu, _gemm.COUNTER_SLOTS) is first
    tiles = LinearLaunch.of(GATE_UP_M32, PREFILL_M, 12_288, 4096, True).tiles
    grown = _gemm._counters(cpu, tiles)
    assert grown.numel() >= tiles and int(grown.abs().sum()) == 0 and grown.dtype == torch.int32
    assert _gemm._RETIRED == [first]  # a captured graph may still point at the old buffer
    assert _gemm._counters(cpu, tiles + 1).numel() >= 2 * tiles  # grows by doubling, not one slot at a time


@pytest.mark.parametrize("split, bm", list(itertools.product([1, 2, 16], [1, 128])))
def test_scratch_bytes_match_the_buffers(split, bm):
    launch = LinearLaunch(100, 74, 640, bm, 16, 32, split, gated=True)
    partial = split * 100 * 148 if split > 1 else 0
    sumsq = split * 5 * 100 if split > 1 else 0
    assert launch.scratch_bytes(norm=False) == 4 * partial
    assert launch.scratch_bytes() == 4 * (partial + sumsq)
