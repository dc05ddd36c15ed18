"""Every op against its fp64 reference, through Triton's interpreter on the CPU.

bf16 is not checked here: the interpreter's tl.dot on bfloat16 operands returns garbage in triton
3.6 (fp16 and fp32 are right), so bf16 is checked on the GPU by benchmarks/bench_ops.py.
"""

import random

import pytest
import torch

import kernel_space as ks
from kernel_space._common import TOLERANCE, fold_gain, linear_weight, norm_weight, poisoned_outputs, randn, rel_error
from kernel_space.rmsnorm_gate_up_silu import rmsnorm_gate_up_silu
from kernel_space.rmsnorm_qkv import rmsnorm_qkv
from tests.conftest import DEVICE

# Odd sizes: N and K are multiples of no block size; gated N is 2 * 37.
SHAPES = {"rmsnorm_qkv": (40, 100), "o_proj_residual": (37, 100), "rmsnorm_gate_up_silu": (74, 100),
          "down_residual": (37, 136), "lm_head": (50, 100)}
CONFIGS = [
    # fma, one row per program, no split
    dict(impl="fused", path="fma", BLOCK_M=1, BLOCK_N=8, BLOCK_K=32, SPLIT_K=1, GROUP_M=1, num_warps=2, num_stages=1,
         split_reduce="kernel", prologue="inline"),
    # fma, split-K 2 reduced by a second kernel
    dict(impl="fused", path="fma", BLOCK_M=2, BLOCK_N=16, BLOCK_K=32, SPLIT_K=2, GROUP_M=1, num_warps=4, num_stages=2,
         split_reduce="kernel", prologue="inline"),
    # fma, split-K 2 reduced by the last program to arrive at each tile
    dict(impl="fused", path="fma", BLOCK_M=1, BLOCK_N=16, BLOCK_K=32, SPLIT_K=2, GROUP_M=1, num_warps=4, num_stages=2,
         split_reduce="last_program", prologue="inline"),
    # dot with grouped ordering
    dict(impl="fused", path="dot", BLOCK_M=16, BLOCK_N=16, BLOCK_K=32, SPLIT_K=1, GROUP_M=8, num_warps=4, num_stages=3,
         split_reduce="kernel", prologue="inline"),
    # norm ops: the norm in a pre-pass kernel, then a plain GEMM (other ops reject prepass)
    dict(impl="fused", path="dot", BLOCK_M=16, BLOCK_N=16, BLOCK_K=32, SPLIT_K=2, GROUP_M=1, num_warps=4, num_stages=2,
         split_reduce="last_program", prologue="prepass"),
    # dot with split-K 4: for down_residual, K = 136 is 5 blocks, split 2, 2, 1 and 0
    dict(impl="fused", path="dot", BLOCK_M=16, BLOCK_N=32, BLOCK_K=32, SPLIT_K=4, GROUP_M=1, num_warps=4, num_stages=2,
         split_reduce="last_program", prologue="inline"),
    # A slice of one K block (the kernel's ONE_BLOCK branch, no K loop) at K = 100: the whole K, masked
    # past 100; split in two blocks of 64 (the second partly masked); with tl.dot. At K = 136
    # (down_residual) the same configs take two blocks a slice, the loop.
    dict(impl="fused", path="fma", BLOCK_M=1, BLOCK_N=16, BLOCK_K=128, SPLIT_K=1, GROUP_M=1, num_warps=4, num_stages=2,
         split_reduce="kernel", prologue="inline"),
    dict(impl="fused", path="fma", BLOCK_M=1, BLOCK_N=16, BLOCK_K=64, SPLIT_K=2, GROUP_M=1, num_warps=4, num_stages=3,
         split_reduce="last_program", prologue="inline"),
    dict(impl="fused", path="dot", BLOCK_M=16, BLOCK_N=16, BLOCK_K=128, SPLIT_K=1, GROUP_M=1, num_warps=4, num_stages=2,
         split_reduce="kernel", prologue="inline"),
    # norm ops: the sum of squares from a second read after the K loop (two blocks a split here; at K = 100
    # the second split's last block is partly masked), split and unsplit
    dict(impl="fused", path="dot", BLOCK_M=16, BLOCK_N=16, BLOCK_K=32, SPLIT_K=2, GROUP_M=1, num_warps=4, num_stages=2,
         split_reduce="last_program", prologue="rescan"),
    dict(impl="fused", path="fma", BLOCK_M=2, BLOCK_N=16, BLOCK_K=32, SPLIT_K=1, GROUP_M=1, num_warps=4, num_stages=3,
         split_reduce="kernel", prologue="rescan"),
]




def _cfg_id(c):
    return f"{c['path']}-bm{c['BLOCK_M']}-bk{c['BLOCK_K']}-split{c['SPLIT_K']}-{c['split_reduce']}-{c['prologue']}"


# The pre-pass and the rescan place a norm prologue: the ops without one refuse them
# (test_prepass_and_rescan_need_a_norm_op). rmsnorm_qkv and rmsnorm_gate_up_silu run with their gain
# folded into the weight, as the model runs them (their make_inputs); lm_head with its gain.
CASES = [(op, cfg) for op in ks.OPS for cfg in CONFIGS if ks.get_op(op).norm or cfg["prologue"] == "inline"]


@pytest.mark.parametrize("prologue", ["prepass", "rescan"])
def test_prepass_and_rescan_need_a_norm_op(prologue):
    cfg = next(c for c in CONFIGS if c["prologue"] == prologue)
    for op in ks.OPS:
        why = ks.get_op(op).check(cfg, 3, *SHAPES[op], 2)
        assert (why is None) if ks.get_op(op).norm else ("no norm prologue" in why)


NORM_SITES = ("rmsnorm_qkv", "rmsnorm_gate_up_silu")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("cfg", [c for c in CONFIGS if c["SPLIT_K"] > 1 or c["prologue"] != "inline"], ids=_cfg_id)
@pytest.mark.parametrize("op", NORM_SITES)
def test_a_folded_gain_computes_what_the_gain_in_the_loop_computes(op, cfg, dtype):
    """The same config with the gain in the kernel and with it folded into the weight (fold_gain, as the
    model loads it), both against the fp64 reference on the unfolded weight and gain."""
    spec = ks.get_op(op)
    n, k = SHAPES[op]
    gen = torch.Generator(device=DEVICE).manual_seed(5)
    h = randn((3, k), dtype, DEVICE, gen)
    g = norm_weight(k, dtype, DEVICE, gen)
    w = linear_weight(n, k, dtype, DEVICE, gen)
    launch = {"rmsnorm_qkv": rmsnorm_qkv, "rmsnorm_gate_up_silu": rmsnorm_gate_up_silu}[op]
    ref = spec.reference({"h": h, "norm_w": g, "w": w})[0]
    for norm_w, weight in ((g, w), (None, fold_gain(w, g))):
        with poisoned_outputs():
            out = launch(h, norm_w, weight, cfg)
        err = rel_error(out, ref)
        assert err <= TOLERANCE[dtype], f"gain {'in the kernel' if norm_w is not None else 'folded'}: {err:.2e}"


def many_rows(cfg: dict) -> int:
    """The M that spans several row tiles, the last one partial: 17 for tl.dot's 16-row tiles; for the
    FMA path's tiles of one or two rows, 5 (past its largest bucket, 4). 17 rows there only took the
    interpreter 3.5x as long (170 of the suite's 1,880 CPU-seconds) for the same program per row."""
    return 17 if cfg["path"] == "dot" else 5


# Every (op, config) at M = 1 in both dtypes; the rows past one in one dtype each (the row masks and
# tiles do not depend on it): 3 (a partial tile, or three one-row programs) in float16, many rows in
# float32. Each M in both dtypes took the interpreter 50 more CPU-seconds for the same code paths.
DTYPES_AT_M = {1: (torch.float32, torch.float16), 3: (torch.float16,), "many": (torch.float32,)}
M_CASES = [(op, cfg, many_rows(cfg) if m == "many" else m, dtype) for op, cfg in CASES
           for m, dtypes in DTYPES_AT_M.items() for dtype in dtypes]


@pytest.mark.parametrize(("op", "cfg", "m", "dtype"), M_CASES,
                         ids=[f"{op}-{_cfg_id(c)}-{m}-{str(d).removeprefix('torch.')}" for op, c, m, d in M_CASES])
def test_fused_matches_reference(op, cfg, m, dtype):
    spec = ks.get_op(op)
    n, k = SHAPES[op]
    assert spec.check(cfg, m, n, k, dtype.itemsize) is None
    gen = torch.Generator(device=DEVICE).manual_seed(1000 * m + len(op))
    inputs = spec.make_inputs(m, n, k, dtype, DEVICE, gen)
    with poisoned_outputs():
        outs = spec.fused(inputs, cfg)
    refs = spec.reference(inputs)
    assert len(outs) == len(refs) == len(spec.output_names)
    for name, out, ref in zip(spec.output_names, outs, refs, strict=True):
        assert out.dtype == dtype
        err = rel_error(out, ref)
        assert err <= TOLERANCE[dtype], f"{op}.{name}: rel error {err:.2e} > {TOLERANCE[dtype]:.0e}"


@pytest.mark.parametrize("op", list(ks.OPS))
def test_unfused_baseline_matches_reference(op):
    spec = ks.get_op(op)
    n, k = SHAPES[op]
    gen = torch.Generator(device=DEVICE).manual_seed(7)
    inputs = spec.make_inputs(5, n, k, torch.float32, DEVICE, gen)
    for out, ref in zip(spec.unfused(inputs), spec.reference(inputs), strict=True):
        assert rel_error(out, ref) <= 1e-5


def test_sampled_configs_from_the_space_are_correct():
    """Configs drawn at random from the search space (the ones check_config admits) compute the
    same function: the space holds no config that is valid on paper and wrong in practice."""
    rng = random.Random(3)
    spec = ks.get_op("rmsnorm_gate_up_silu")  # the op with the norm prologue and the gated epilogue
    n, k, m = 74, 100, 5
    checked = 0
    while checked < 6:
        cfg = spec.space.sample(rng)
        cfg["impl"] = "fused"
        if spec.check(cfg, m, n, k, 2) is not None:
            continue
        gen = torch.Generator(device=DEVICE).manual_seed(checked)
        inputs = spec.make_inputs(m, n, k, torch.float16, DEVICE, gen)
        (out,) = spec.fused(inputs, cfg)
        (ref,) = spec.reference(inputs)
        assert rel_error(out, ref) <= TOLERANCE[torch.float16], ks.config_key(cfg)
        checked += 1


def test_every_output_element_is_written():
    """Poison the memory the outputs will land in: NaN left anywhere fails rel_error (inf)."""
    spec = ks.get_op("rmsnorm_qkv")
    n, k, m = 40, 100, 17
    gen = torch.Generator(device=DEVICE).manual_seed(5)
    inputs = spec.make_inputs(m, n, k, torch.float32, DEVICE, gen)
    with poisoned_outputs():
        outs = spec.fused(inputs, CONFIGS[5])
        assert torch.isnan(torch.empty(4)).all()  # the poison is really there
    for out, ref in zip(outs, spec.reference(inputs), strict=True):
        assert rel_error(out, ref) <= 1e-4


def test_last_program_split_leaves_counters_at_zero():
    """The one-launch split-K resets its tile counters, so the next launch (or graph replay) starts clean."""
    from kernel_space import _gemm

    spec = ks.get_op("o_proj_residual")
    inputs = spec.make_inputs(3, 37, 100, torch.float32, DEVICE, torch.Generator(device=DEVICE).manual_seed(2))
    for _ in range(2):
        (out,) = spec.fused(inputs, CONFIGS[2])
        assert rel_error(out, spec.reference(inputs)[0]) <= 1e-4
    assert int(_gemm._COUNTERS[out.device].abs().sum()) == 0  # keyed as the launch saw it: cuda:0 on a GPU


def test_empty_batch_returns_empty_outputs():
    spec = ks.get_op("o_proj_residual")
    inputs = spec.make_inputs(0, 37, 100, torch.float32, DEVICE, torch.Generator(device=DEVICE).manual_seed(0))
    (out,) = spec.fused(inputs, CONFIGS[0])
    assert out.shape == (0, 37)


def _record_index_64(monkeypatch) -> list:
    """Wrap the launcher so every kernel launch records the INDEX_64 it was given."""
    from kernel_space import _gemm

    seen, real = [], _gemm._launcher

    def recording(kernel, grid):
        launch = real(kernel, grid)
        return lambda *a, **kw: seen.append(kw["INDEX_64"]) or launch(*a, **kw)

    monkeypatch.setattr(_gemm, "_launcher", recording)
    return seen


# No split, split-K reduced by the second kernel and by the last program, the norm in a pre-pass.
WIDE_CONFIGS = [CONFIGS[0], CONFIGS[1], CONFIGS[5], CONFIGS[4]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("op, cfg", [(op, cfg) for op in ks.OPS for cfg in WIDE_CONFIGS
                                     if ks.get_op(op).norm or cfg["prologue"] == "inline"],
                         ids=lambda p: p if isinstance(p, str) else _cfg_id(p))
def test_64_bit_offsets_compute_the_same_function(op, cfg, dtype, monkeypatch):
    """The INDEX_64 path (on by itself only at shapes of gigabytes) forced on at a small odd shape."""
    from kernel_space import _gemm

    spec = ks.get_op(op)
    n, k = SHAPES[op]
    m = many_rows(cfg)
    assert spec.check(cfg, m, n, k, dtype.itemsize) is None
    seen = _record_index_64(monkeypatch)
    inputs = spec.make_inputs(m, n, k, dtype, DEVICE, torch.Generator(device=DEVICE).manual_seed(11))
    with _gemm.force_index_64(), poisoned_outputs():
        (out,) = spec.fused(inputs, cfg)
    assert seen and all(seen), seen  # every kernel of the launch (pre-pass, GEMM, reduction) got it
    err = rel_error(out, spec.reference(inputs)[0])
    assert err <= TOLERANCE[dtype], f"{op}: rel error {err:.2e} > {TOLERANCE[dtype]:.0e}"


def test_small_launches_keep_32_bit_offsets(monkeypatch):
    spec = ks.get_op("rmsnorm_gate_up_silu")
    seen = _record_index_64(monkeypatch)
    inputs = spec.make_inputs(3, 74, 100, torch.float32, DEVICE, torch.Generator(device=DEVICE).manual_seed(0))
    spec.fused(inputs, CONFIGS[4])
    assert seen == [False, False]  # the pre-pass and the GEMM


WGMMA_TILE = dict(impl="fused", path="dot", BLOCK_M=64, BLOCK_N=16, BLOCK_K=32, SPLIT_K=2, GROUP_M=1, num_warps=4,
                  num_stages=2, split_reduce="last_program", prologue="inline")


@pytest.mark.parametrize("m", [17, 33])
@pytest.mark.parametrize("op", list(ks.OPS))
def test_a_64_row_tile_between_16_and_64_rows_matches_reference(op, m):
    # Hopper's warpgroup MMA takes 64 rows: the space offers that tile at 16 < M < 64, padding included.
    spec = ks.get_op(op)
    n, k = SHAPES[op]
    # The norm ops' inline prologue on this tile would get a short x ring (spec.inline_ring_short): rescan.
    cfg = {**WGMMA_TILE, "prologue": "rescan"} if spec.norm else WGMMA_TILE
    assert spec.check(cfg, m, n, k, 4) is None
    inputs = spec.make_inputs(m, n, k, torch.float32, DEVICE, torch.Generator(device=DEVICE).manual_seed(m))
    with poisoned_outputs():
        outs = spec.fused(inputs, cfg)
    for out, ref in zip(outs, spec.reference(inputs), strict=True):
        assert rel_error(out, ref) <= TOLERANCE[torch.float32]


@pytest.mark.parametrize("split_reduce", ["last_program", "kernel"])
@pytest.mark.parametrize("op", list(ks.OPS))
def test_a_split_reduce_too_large_to_unroll_loads_its_splits_in_chunks(op, split_reduce):
    """Past _gemm.REDUCE_UNROLL_ELEMS partial values the split-K reducer loops over chunks of splits
    rather than unrolling all of them (a 64 x 128 gated tile over 16 splits took Triton 17 s to
    compile): the chunks cover every split."""
    from kernel_space import _gemm

    spec = ks.get_op(op)
    cfg = dict(impl="fused", path="dot", BLOCK_M=16, BLOCK_N=256, BLOCK_K=32, SPLIT_K=16, GROUP_M=1, num_warps=4,
               num_stages=1, split_reduce=split_reduce, prologue="inline")
    n, k = (2 * 300 if spec.gated else 300), 16 * 32 - 5  # the last split's block partly masked
    tile = cfg["BLOCK_M"] * cfg["BLOCK_N"] * (2 if spec.gated else 1)
    assert tile * cfg["SPLIT_K"] > _gemm.REDUCE_UNROLL_ELEMS.value  # the chunked loop, not the unrolled one
    assert spec.check(cfg, 3, n, k, 4) is None
    inputs = spec.make_inputs(3, n, k, torch.float32, DEVICE, torch.Generator(device=DEVICE).manual_seed(9))
    with poisoned_outputs():
        outs = spec.fused(inputs, cfg)
    for out, ref in zip(outs, spec.reference(inputs), strict=True):
        assert rel_error(out, ref) <= TOLERANCE[torch.float32]


# fma and dot, split-K by a second kernel and by the last program, and the pre-pass
ARGMAX_CONFIGS = [c for c in CONFIGS if c["prologue"] == "inline"][:6] + [CONFIGS[4]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("cfg", ARGMAX_CONFIGS, ids=_cfg_id)
def test_lm_head_argmax_is_the_argmax_of_the_logits(cfg, dtype):
    """The argmax in lm_head's epilogue picks what torch.argmax of the fused logits picks, ties included
    (the first column), over several N tiles, split or not, at M = 1 and over several row tiles."""
    from kernel_space.lm_head import lm_head, lm_head_argmax

    n, k = SHAPES["lm_head"]
    gen = torch.Generator(device=DEVICE).manual_seed(8)
    for m in (1, many_rows(cfg)):
        h = randn((m, k), dtype, DEVICE, gen)
        g = norm_weight(k, dtype, DEVICE, gen)
        w = linear_weight(n, k, dtype, DEVICE, gen)
        w[n - 1] = w[3] = w[n // 2]  # equal logits in three tiles: the first column must win where they lead
        h[0] = w[n // 2] * 4  # row 0's largest logit is that tie
        with poisoned_outputs():
            ids = lm_head_argmax(h, g, w, cfg)
        assert ids.dtype == torch.long and ids.shape == (m,)
        assert torch.equal(ids, lm_head(h, g, w, cfg).argmax(-1))
        assert ids[0] == 3


def test_argmax_takes_no_residual_and_no_gated_weight():
    from kernel_space import _gemm

    x = torch.zeros((1, 32))
    with pytest.raises(ValueError, match="argmax takes neither"):
        _gemm.launch_fused_linear(x, torch.zeros((16, 32)), CONFIGS[0], gated=True, argmax=True)
