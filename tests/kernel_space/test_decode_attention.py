"""decode_attention against its fp64 reference under Triton's interpreter (on a GPU when there is one):
odd lengths, lengths across chunk edges, GQA groups 1, 2 and 7, head_dim 64 and 128, split and unsplit,
both packs and both combines, configs drawn from the space; configs and inputs it must refuse.

bf16 runs on the GPU only: the interpreter's tl.dot has no bf16 (see test_ops.py)."""

import pytest
import torch

from kernel_space import _gemm
from kernel_space import decode_attention as decode_attention_module
from kernel_space._common import TOLERANCE, poisoned_outputs, rel_error
from kernel_space.decode_attention import (
    MIN_CHUNK,
    PLAN_PROGRAMS_PER_SM,
    PREFETCH_L2_SHARE,
    SPACE,
    SPLITS_VALUES,
    AttentionProblem,
    attention_plan,
    check_config,
    combine_splits,
    decode_attention,
    decode_attention_reference,
    decode_attention_unfused,
    kv_lines,
    make_inputs,
    prefetch_slots,
    redundant_reason,
    sample_configs,
)
from kernel_space.spec import next_pow2
from tests.conftest import DEVICE


def config(splits=1, block_n=32, pack="group", combine="kernel", warps=4, stages=2) -> dict:
    return {"impl": "fused", "SPLITS": splits, "BLOCK_N": block_n, "pack": pack, "combine": combine,
            "num_warps": warps, "num_stages": stages}


def run(problem: AttentionProblem, lengths, cfg, seed=0, first_row=0, rows=None):
    """The kernel's output and the reference's, on caches of `rows` rows whose slots past each
    sequence's position hold NaN (they must not leak in), outputs poisoned with NaN."""
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    inputs = make_inputs(AttentionProblem(rows or problem.batch, problem.heads, problem.kv_heads,
                                          problem.head_dim, problem.context, problem.dtype), DEVICE, gen)
    q = inputs["q"][:problem.batch].contiguous()
    k, v = inputs["k_cache"], inputs["v_cache"]
    positions = torch.tensor(lengths, device=DEVICE) - 1
    for i, n in enumerate(lengths):
        k[first_row + i, n:] = float("nan")
        v[first_row + i, n:] = float("nan")
    with poisoned_outputs():
        out = decode_attention(q, k, v, positions, inputs["scale"], first_row, cfg)
    return out, decode_attention_reference(q, k, v, positions, inputs["scale"], first_row)


CONFIGS = {
    "unsplit": config(),
    "split4-kernel": config(splits=4),
    "split4-last": config(splits=4, combine="last_program"),
    "split3-head-kernel": config(splits=3, pack="head", warps=2, stages=1),
    "split3-head-last": config(splits=3, pack="head", combine="last_program", warps=2, stages=1),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize(("heads", "kv_heads", "head_dim"),
                         [(2, 2, 64), (4, 2, 128), (7, 1, 64), (14, 2, 128), (8, 1, 64)],
                         ids=["g1", "g2", "g7", "g7-hd128", "g8"])
def test_matches_reference_at_odd_lengths(heads, kv_heads, head_dim, name, dtype):
    """Lengths 1, 17 and 300 in one batch, in cache rows 1..3 of 4."""
    if dtype == torch.bfloat16 and DEVICE == "cpu":
        pytest.skip("the interpreter's tl.dot has no bf16: checked on the GPU")
    cfg = CONFIGS[name]
    problem = AttentionProblem(3, heads, kv_heads, head_dim, 300, str(dtype).removeprefix("torch."))
    assert check_config(cfg, problem) is None
    out, ref = run(problem, [1, 17, 300], cfg, first_row=1, rows=4)
    assert out.shape == (3, 1, heads * head_dim) and out.dtype == dtype
    assert rel_error(out, ref) <= TOLERANCE[dtype]


@pytest.mark.parametrize("combine", ["kernel", "last_program"])
def test_lengths_across_chunk_edges(combine):
    """BLOCK_N 16 and 4 splits: a length of 64 cuts into 4 chunks of 16, 65 into 3 of 32; each length
    around a block or chunk edge, so the last block of a chunk is full, one slot, or one short."""
    lengths = [1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 200]
    problem = AttentionProblem(len(lengths), 4, 2, 64, 200, "float32")
    out, ref = run(problem, lengths, config(splits=4, block_n=16, combine=combine), seed=3)
    assert rel_error(out, ref) <= TOLERANCE[torch.float32]
    for i in range(len(lengths)):  # every sequence on its own, not only the batch's norm
        assert rel_error(out[i], ref[i]) <= TOLERANCE[torch.float32], lengths[i]


@pytest.mark.parametrize("combine", ["kernel", "last_program"])
@pytest.mark.parametrize(("heads", "kv_heads", "pack"), [(4, 2, "group"), (4, 2, "head"), (6, 2, "group")],
                         ids=["g2", "g2-head", "g3"])
def test_combine_in_several_steps(combine, heads, kv_heads, pack, monkeypatch):
    """More active splits than a combine step reads (combine_splits): 12 splits at head_dim 128, one
    warp (the combine kernel's warps set to one too), are read 4 (group 2), 8 (pack=head) or 2 (group
    3, padded to 4 rows) at a time, so the running maximum carries over 2 to 6 steps, the last one
    partly empty; shorter sequences use fewer splits (down to one, where no combine runs)."""
    monkeypatch.setattr(decode_attention_module, "COMBINE_WARPS", 1)
    lengths = [192, 191, 177, 100, 33, 16]
    problem = AttentionProblem(len(lengths), heads, kv_heads, 128, 192, "float32")
    hc = next_pow2(heads // kv_heads) if pack == "group" else 1
    assert combine_splits(hc, 128, 32, 12) < 12
    cfg = config(splits=12, block_n=16, pack=pack, combine=combine, warps=1, stages=1 if pack == "head" else 2)
    out, ref = run(problem, lengths, cfg, seed=5)
    for i in range(len(lengths)):
        assert rel_error(out[i], ref[i]) <= TOLERANCE[torch.float32], lengths[i]


@pytest.mark.parametrize("head_dim", [16, 64, 128])
def test_combine_kernel_at_the_most_splits(head_dim):
    """The combine kernel reads every split of a (head, sequence) at once, in slices of head_dim
    (COMBINE_DC wide, the whole head at 16): 64 splits of BLOCK_N 16 over 1,024 slots, a sequence
    using all of them, some, two or one (no combine: its program writes o)."""
    lengths = [1024, 1000, 513, 17, 16]
    problem = AttentionProblem(len(lengths), 6, 2, head_dim, 1024, "float32")
    out, ref = run(problem, lengths, config(splits=64, block_n=16), seed=7)
    for i in range(len(lengths)):
        assert rel_error(out[i], ref[i]) <= TOLERANCE[torch.float32], lengths[i]


def test_combine_steps_and_prefetch_sizes():
    assert combine_splits(2, 128, 128, 64) == 16  # 32 fp32 values a thread: 4,096 over 2 x 128
    assert combine_splits(16, 128, 32, 64) == 1  # a padded group of 16 still reads one split a step
    assert combine_splits(1, 64, 128, 3) == 4  # never past the splits, rounded up to a power of two
    assert combine_splits(2, 128, 128, 1) == 1
    assert kv_lines(128, 2) == 2 and kv_lines(64, 2) == 1 and kv_lines(32, 2) == 1 and kv_lines(128, 4) == 4
    # No PDL (a CPU, or the interpreter): nothing is prefetched.
    cpu = torch.device("cpu")
    assert prefetch_slots(AttentionProblem(1, 16, 8, 128, 8192), config(splits=32, block_n=64), 256, cpu) == 0


def test_prefetch_fills_at_most_its_share_of_l2(monkeypatch):
    """On a PDL device: a program's whole chunk where all chunks together fit in PREFETCH_L2_SHARE of
    L2, else nothing; nothing where the grid is more than two programs an SM."""
    monkeypatch.setattr(_gemm, "pdl_enabled", lambda device: True)
    monkeypatch.setattr(_gemm, "l2_bytes", lambda device: 50 << 20)
    monkeypatch.setattr(_gemm, "device_info", lambda device: (9, 132))
    gpu = torch.device("cuda", 0)
    problem = AttentionProblem(1, 16, 8, 128, 8192)  # qwen3-0.6b, batch 1, 8k: 512 B of K and V a slot
    # Batch 1 x 8k, 32 splits of 256 slots: 256 programs x 128 KB = 32 MB, past 25 MB: none.
    assert prefetch_slots(problem, config(splits=32, block_n=64), 256, gpu) == 0
    # 64 splits of 128 slots: 512 programs, past two a SM: none.
    assert prefetch_slots(problem, config(splits=64, block_n=64), 512, gpu) == 0
    # Batch 8 x 256 (+ 32 decode slots), 4 splits of 128 slots (BLOCK_N 64): 256 programs x 64 KB.
    short = AttentionProblem(8, 16, 8, 128, 288)
    assert prefetch_slots(short, config(splits=4, block_n=64), 256, gpu) == 128
    assert 256 * 128 * 512 <= PREFETCH_L2_SHARE * (50 << 20)
    # Batch 32 x 288, one split of 320 slots: 256 programs x 160 KB = 40 MB: none.
    assert prefetch_slots(AttentionProblem(32, 16, 8, 128, 288), config(splits=1, block_n=64), 256, gpu) == 0


def test_last_program_combine_leaves_counters_at_zero():
    problem = AttentionProblem(2, 4, 2, 64, 100, "float32")
    run(problem, [100, 40], config(splits=4, block_n=16, combine="last_program"))
    counters = _gemm._counters(torch.device(DEVICE), 1)
    assert not counters.any()


@pytest.mark.parametrize("seed", [0, 1])
def test_configs_drawn_from_the_space(seed):
    problem = AttentionProblem(2, 4, 2, 64, 90, "float16")
    configs = sample_configs(problem, 5, seed=seed, prep="separate")  # from a prepared q (prep=fused: test_..._prep)
    assert len(configs) == 5 and configs[0] == attention_plan(2, 4, 2, 64, 90, 132)
    for cfg in configs:
        assert set(cfg) == set(SPACE.values)
        assert check_config(cfg, problem) is None and redundant_reason(cfg, problem) is None
        out, ref = run(problem, [90, 33], cfg, seed=seed)
        assert rel_error(out, ref) <= TOLERANCE[torch.float16], cfg


@pytest.mark.parametrize("combine", ["kernel", "last_program"])
def test_positions_past_the_cache_are_clamped_to_it(combine):
    """A position past the cache reads no slot beyond it: the kernel attends the whole cache."""
    problem = AttentionProblem(2, 4, 2, 64, 40, "float32")
    inputs = make_inputs(problem, DEVICE, torch.Generator(device=DEVICE).manual_seed(6))
    cfg = config(splits=3, block_n=16, combine=combine)
    out = decode_attention(**{**inputs, "positions": torch.tensor([[39], [500]], device=DEVICE)}, config=cfg)
    ref = decode_attention_reference(**{**inputs, "positions": torch.tensor([[39], [39]], device=DEVICE)})
    assert rel_error(out, ref) <= TOLERANCE[torch.float32]


def test_unfused_baseline_matches_reference():
    problem = AttentionProblem(3, 14, 2, 64, 50, "float32")
    inputs = make_inputs(problem, DEVICE, torch.Generator(device=DEVICE).manual_seed(5), lengths=[50, 1, 17])
    out = decode_attention_unfused(**inputs)
    assert rel_error(out, decode_attention_reference(**inputs)) <= 1e-5


P = AttentionProblem(8, 16, 8, 128, 8192)


@pytest.mark.parametrize(("cfg", "problem", "reason"), [
    ({"impl": "cuda"}, P, "impl must be one of"),
    ({k: v for k, v in config().items() if k != "BLOCK_N"}, P, "config lacks BLOCK_N"),
    ({**config(), "SPLITS": 5}, P, "SPLITS=5 is not in the search space"),
    ({**config(), "BLOCK_M": 16}, P, "BLOCK_M is not a parameter"),
    (config(), AttentionProblem(1, 16, 8, 80, 256), "head_dim 80 is not a power of two"),
    (config(), AttentionProblem(1, 32, 1, 128, 256), "group of 32 query heads"),
    (config(block_n=256, pack="head", warps=1), P, "pack=head holds BLOCK_N*head_dim/threads = 1024"),
    (config(block_n=256, warps=1, stages=1), AttentionProblem(1, 16, 1, 256, 256), "pack=group holds"),
    (config(block_n=256, warps=8, stages=4), AttentionProblem(1, 8, 8, 256, 4096), "shared memory estimate"),
])
def test_invalid_configs_are_refused_with_their_reason(cfg, problem, reason):
    assert reason in check_config(cfg, problem)


def test_redundant_configs_are_named():
    small = AttentionProblem(1, 4, 2, 64, 40)
    assert "combine only matters" in redundant_reason(config(combine="last_program"), small)
    assert "leaves empty splits" in redundant_reason(config(splits=4, block_n=16), small)
    assert "exceeds the padded context" in redundant_reason(config(block_n=128), small)
    assert redundant_reason({"impl": "unfused"}, small) is None and check_config({"impl": "unfused"}, small) is None


def _inputs(**change):
    problem = AttentionProblem(2, 4, 2, 16, 8, "float32")
    inputs = make_inputs(problem, DEVICE, torch.Generator(device=DEVICE).manual_seed(0))
    return {**inputs, **change}


BAD_INPUTS = [
    ({"q": torch.zeros(2, 4, 16)}, "q must be 4-D"),
    ({"q": torch.zeros(2, 2, 4, 16)}, "one token per sequence"),
    ({"q": torch.zeros(2, 1, 16, 4).transpose(2, 3)}, "q must be contiguous"),
    ({"q": torch.zeros(2, 1, 4, 16, dtype=torch.int32)}, "q has dtype torch.int32"),
    ({"k_cache": torch.zeros(2, 8, 2, 16, dtype=torch.float16)}, "k_cache is torch.float16"),
    ({"v_cache": torch.zeros(2, 8, 2, 32)[..., ::2]}, "v_cache needs a unit stride"),
    ({"v_cache": torch.zeros(2, 9, 2, 16)}, "differ in shape"),
    ({"q": torch.zeros(2, 1, 4, 32)}, "head_dim 16 differs from q's 32"),
    ({"q": torch.zeros(2, 1, 3, 16)}, "3 query heads do not split"),
    ({"q": torch.zeros(2, 1, 4, 80), "k_cache": torch.zeros(2, 8, 2, 80), "v_cache": torch.zeros(2, 8, 2, 80)},
     "head_dim 80 is not a power of two"),
    ({"positions": torch.zeros(2, 1)}, "positions must be an int32/int64 tensor"),
    ({"positions": torch.zeros(3, dtype=torch.long)}, "of 2 elements"),
    ({"positions": [0, 1]}, "positions must be a torch.Tensor"),
    ({"first_row": 1}, "first_row 1 + batch 2"),
    ({"scale": -1.0}, "scale must be a positive number"),
    ({"config": {"impl": "unfused"}}, "call decode_attention_unfused"),
    ({"config": config(splits=7)}, "SPLITS=7 is not in the search space"),
]


def _on_device(t: torch.Tensor) -> torch.Tensor:
    """t on DEVICE with its strides kept (Tensor.to makes a strided CPU view contiguous on a GPU)."""
    out = torch.empty_strided(t.size(), t.stride(), dtype=t.dtype, device=DEVICE)
    return out.copy_(t)


@pytest.mark.parametrize(("change", "message"), BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_launcher_refuses_bad_inputs(change, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("+", r"\+")):
        decode_attention(**_inputs(**{k: (_on_device(v) if isinstance(v, torch.Tensor) else v)
                                      for k, v in change.items()}))


def test_attention_problem_validates():
    with pytest.raises(ValueError, match="AttentionProblem.context must be a positive int"):
        AttentionProblem(1, 16, 8, 128, 0)
    with pytest.raises(ValueError, match="do not split into groups"):
        AttentionProblem(1, 6, 4, 128, 10)
    with pytest.raises(ValueError, match="lengths must be 2 values"):
        make_inputs(AttentionProblem(2, 4, 2, 16, 8), DEVICE, torch.Generator(device=DEVICE), lengths=[9, 1])


def _programs(batch, kv_heads, context, cfg):
    blocks = -(-context // cfg["BLOCK_N"])
    return batch * kv_heads * -(-blocks // -(-blocks // cfg["SPLITS"]))


@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("heads", [16, 32])
def test_the_plan_runs_one_to_two_waves(heads, head_dim):
    """Qwen3-0.6B/8B head shapes on an H100 (132 SMs): every plan runs and is in the space; long
    contexts split into one to two waves of PLAN_PROGRAMS_PER_SM programs an SM (at 8k x 8 the first
    plan let one program walk 4k slots); short ones split only while pairs are too few for a wave."""
    wave = 132 * PLAN_PROGRAMS_PER_SM
    for batch in (1, 2, 4, 8, 16, 32, 64, 128, 256):
        for context in (256, 2048, 8192, 32768):
            cfg = attention_plan(batch, heads, 8, head_dim, context, 132)
            assert cfg["SPLITS"] in SPLITS_VALUES
            assert check_config(cfg, AttentionProblem(batch, heads, 8, head_dim, context)) is None
            programs = _programs(batch, 8, context, cfg)
            if context >= 2048 and batch * 8 < wave:
                # At least 0.6 of a wave, unless the chunks are already as short as MIN_CHUNK allows.
                at_most = min(SPLITS_VALUES[-1], context // MIN_CHUNK)
                assert cfg["SPLITS"] > 1 or batch * 8 >= 0.6 * wave, (batch, context)
                assert programs <= 2 * wave, (batch, context, programs)
                assert programs >= 0.6 * wave or cfg["SPLITS"] == at_most, (batch, context, programs)
            if context <= 1024:  # short: split only to fill one wave
                assert cfg["SPLITS"] == 1 or programs <= wave, (batch, context, programs)
            if batch * 8 >= wave:
                assert cfg["SPLITS"] == 1


def test_the_plan_takes_the_splits_the_h100_sweep_found_fastest(monkeypatch):
    """benchmarks/results/attn_bench_qwen3-0.6b_H100_2026-11-26.json: the fastest SPLITS per cell, alone,
    with the combine of the time: KERNEL_SEARCH_ATTN_SPLITS=fewest (the rule that sweep set)."""
    monkeypatch.setenv("KERNEL_SEARCH_ATTN_SPLITS", "fewest")
    fastest = {(1, 256): 4, (1, 8192): 32, (1, 32768): 32, (8, 2048): 4, (8, 8192): 4, (8, 32768): 4,
               (32, 256): 1, (32, 2048): 1, (32, 8192): 1}
    for (batch, context), splits in fastest.items():
        plan = attention_plan(batch, 16, 8, 128, context, 132, early=False)  # the sweep ran the loop kernel
        assert plan["SPLITS"] == splits, (batch, context)
        # Split a few ways, the last program combines (ninth session's step probe), many ways the combine
        # kernel (eleventh session); one split has nothing to combine.
        assert plan["combine"] == ("last_program" if 1 < splits < 16 else "kernel"), (batch, context)
        assert check_config(plan, AttentionProblem(batch, 16, 8, 128, context)) is None
        assert redundant_reason(plan, AttentionProblem(batch, 16, 8, 128, context)) is None


def test_long_contexts_take_the_most_splits_of_two_waves():
    """The rule since the twenty-fourth session (the 0.6B decode step on an H200, env_ab.py, ABAB: 5-12%
    faster at batch 1 x 8k-32k, 2 x 8k, 4 x 4k, 8 x 8k, 16 x 4k, 32 x 2k and 8k; 8B 2-4% at batch 1 and
    8 x 8k; batch 8 x 2k 1-2% slower): at 8k + 32 slots, batch 1 runs 64 splits (43 used: chunks of 3
    blocks), batch 8 runs 8, batch 32 runs 2; short contexts as before."""
    most = {(1, 8224): 64, (1, 16416): 64, (1, 32800): 64, (2, 8224): 32, (4, 4128): 16, (8, 2080): 8,
            (8, 8224): 8, (16, 4128): 4, (32, 2080): 2, (32, 8224): 2, (1, 256): 4, (32, 256): 1, (8, 1024): 4}
    for (batch, context), splits in most.items():
        plan = attention_plan(batch, 16, 8, 128, context, 132, early=False)
        assert plan["SPLITS"] == splits and batch * 8 * splits <= 2 * 264, (batch, context)
        assert plan["combine"] == ("last_program" if 1 < splits < 16 else "kernel"), (batch, context)
        problem = AttentionProblem(batch, 16, 8, 128, context)
        assert check_config(plan, problem) is None and redundant_reason(plan, problem) is None
    assert attention_plan(1, 16, 8, 128, 17, 132)["BLOCK_N"] == 32
    # Qwen3-8B's heads (32 over 8 KV heads) split as 0.6B's do: the combine follows the split count.
    for (batch, context), combine in {(1, 8192): "kernel", (1, 2048): "kernel", (8, 8192): "last_program",
                                      (32, 256): "kernel"}.items():
        assert attention_plan(batch, 32, 8, 128, context, 132)["combine"] == combine, (batch, context)


def early(splits, block_n, pack="group", combine="last_program", warps=4) -> dict:
    return {**config(splits, block_n, pack, combine, warps, 1), "kv": "early"}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize(("heads", "kv_heads", "head_dim", "context", "cfg"), [
    (4, 2, 64, 256, early(8, 32)),
    (7, 1, 64, 256, early(4, 64, combine="kernel")),
    (8, 8, 128, 256, early(4, 64, warps=8)),
    (6, 2, 64, 256, early(2, 128, pack="head", combine="kernel", warps=8)),
    (4, 4, 64, 32, early(1, 32, combine="kernel")),
], ids=["g2-split8", "g7-split4-kernel", "g1-hd128", "head-split2", "unsplit"])
def test_kv_early_matches_reference(heads, kv_heads, head_dim, context, cfg, dtype):
    """kv=early: each program's one block loaded before PDL's wait, the new token's slot after it, at
    lengths 1, 17, one off a block edge and the whole cache (slots past each length NaN), in cache rows
    after a first one."""
    problem = AttentionProblem(4, heads, kv_heads, head_dim, context, str(dtype).removeprefix("torch."))
    assert check_config(cfg, problem) is None and redundant_reason(cfg, problem) is None
    out, ref = run(problem, [1, 17, cfg["BLOCK_N"] + 1, context], cfg, first_row=1, rows=5)
    assert rel_error(out, ref) <= TOLERANCE[dtype]


def test_kv_early_past_one_block_walks_the_rest_after_the_wait():
    """Where a program's chunk is more than one block (the cache holds more than SPLITS x BLOCK_N slots),
    kv=early loads the chunk's first block before PDL's wait and walks the rest in a loop after it:
    right at lengths across block and chunk edges, with either combine and pack, in 1, 2 and 3 stages
    (stages are then not redundant); a chunk of one block has no loop (its stages are)."""
    from kernel_space.decode_attention import one_block

    problem = AttentionProblem(6, 4, 2, 64, 200, "float32")
    assert not one_block(early(2, 32), 200) and one_block(early(2, 32), 64)
    lengths = [200, 33, 1, 64, 65, 130]  # chunks of 4 blocks at 200, of one block, the second chunk's edge
    for cfg in (early(2, 32), early(3, 16, combine="kernel"), {**early(2, 32), "num_stages": 2},
                {**early(2, 32), "num_stages": 3}, early(3, 16, pack="head", combine="kernel"),
                early(1, 32, combine="kernel")):
        assert check_config(cfg, problem) is None and redundant_reason(cfg, problem) is None, cfg
        out, ref = run(problem, lengths, cfg, first_row=1, rows=7)
        assert rel_error(out, ref) <= TOLERANCE[torch.float32], cfg
    assert "has no loop" in redundant_reason({**early(2, 32), "num_stages": 2}, AttentionProblem(2, 4, 2, 64, 64))
    heavy = AttentionProblem(1, 16, 8, 128, 256, "float32")
    assert "plus its K and V tiles (kv=early)" in check_config(early(2, 128), heavy)


def test_the_plan_from_the_qkv_rows_fuses_the_prep_where_it_loads_early(monkeypatch):
    """plan_from_qkv (the model's and the tuner's default) at 0.6B's heads on an H100 (a wave: 264
    programs): kv=early with prep fused in 32-slot blocks where a program a block fits one wave (batch 1,
    2 and 4 x 256), in 64-slot blocks where that fits 3 waves (batch 4 and 8 x 288, 8 x 544, 16 x 256,
    batch 1 x 2k), else attention_plan's loop plan, prep separate (batch 32 x 256, 8 x 1k, 1 x 8k) or, from
    4 sequences past 1k slots, fused (4 x 2k: test_the_loop_plan_fuses_the_prep_where_its_rule_says).
    KERNEL_SEARCH_ATTN_PREP=separate gives attention_plan's config, KERNEL_SEARCH_ATTN_EARLY=0 the loop
    plan."""
    from kernel_space.decode_attention import plan_from_qkv

    expected = {(1, 256): (32, 8), (2, 256): (32, 8), (4, 256): (32, 8), (4, 288): (64, 6), (8, 288): (64, 6),
                (1, 2048): (64, 32), (8, 544): (64, 12), (16, 256): (64, 4), (32, 256): None, (8, 1024): None,
                (4, 2048): "loop, prep fused", (1, 8192): None}
    for (batch, context), early in expected.items():
        plan = plan_from_qkv(batch, 16, 8, 128, context, 132)
        loop = attention_plan(batch, 16, 8, 128, context, 132, early=False)
        if early is None:
            assert plan == loop and plan["prep"] == "separate", (batch, context)
        elif early == "loop, prep fused":
            assert plan == {**loop, "prep": "fused"} and loop["prep"] == "separate", (batch, context)
        else:
            assert (plan["kv"], plan["prep"], plan["BLOCK_N"], plan["SPLITS"], plan["num_stages"]) == \
                ("early", "fused", *early, 1), (batch, context)
            assert plan["combine"] == ("last_program" if early[1] < 16 else "kernel")
        problem = AttentionProblem(batch, 16, 8, 128, context)
        assert check_config(plan, problem) is None and redundant_reason(plan, problem) is None
    monkeypatch.setenv("KERNEL_SEARCH_ATTN_PREP", "separate")
    assert plan_from_qkv(1, 16, 8, 128, 256, 132) == attention_plan(1, 16, 8, 128, 256, 132)
    assert plan_from_qkv(8, 16, 8, 128, 288, 132) == attention_plan(8, 16, 8, 128, 288, 132, early=False)
    monkeypatch.delenv("KERNEL_SEARCH_ATTN_PREP")
    monkeypatch.setenv("KERNEL_SEARCH_ATTN_EARLY", "0")
    assert plan_from_qkv(4, 16, 8, 128, 288, 132) == attention_plan(4, 16, 8, 128, 288, 132, early=False)


def test_the_loop_plan_fuses_the_prep_where_its_rule_says(monkeypatch):
    """The loop plan from the qkv rows runs the prep inside the attention kernel where a KV head serves at
    most 2 q heads (0.6B's 16 / 8, not 8B's 32 / 8), from 4 sequences, past 1,024 slots up to 9,216
    (LOOP_PREP_FUSED_*); elsewhere, and with KERNEL_SEARCH_ATTN_LOOP_PREP=separate, the prep kernel runs.
    The fused plan passes the op's check."""
    from kernel_space.decode_attention import plan_from_qkv

    def prep(batch, heads, context):
        plan = plan_from_qkv(batch, heads, 8, 128, context, 132)
        assert plan == {**attention_plan(batch, heads, 8, 128, context, 132, early=False), "prep": plan["prep"]}
        assert check_config(plan, AttentionProblem(batch, heads, 8, 128, context)) is None
        return plan["prep"]

    fused = [(4, 16, 2048), (8, 16, 2112), (16, 16, 4160), (32, 16, 2112), (4, 16, 8256), (32, 16, 9216)]
    separate = [(2, 16, 8256), (32, 16, 1024), (8, 16, 9217), (4, 32, 2112), (16, 32, 4160), (8, 32, 8256)]
    assert [prep(*cell) for cell in fused] == ["fused"] * len(fused)
    assert [prep(*cell) for cell in separate] == ["separate"] * len(separate)
    monkeypatch.setenv("KERNEL_SEARCH_ATTN_LOOP_PREP", "separate")
    assert [prep(*cell) for cell in fused] == ["separate"] * len(fused)


def test_the_plan_loads_early_where_a_program_a_block_fits_a_wave(monkeypatch):
    """At 0.6B's heads on an H100: batch 1 x 256 takes kv=early, a 32-slot block a program (8 splits),
    one wave of 64 programs; batch 8 x 256 (two waves of such programs) and batch 1 x 2k keep the loop
    plan, as do early=False and KERNEL_SEARCH_ATTN_EARLY=0. Every plan runs and is in the space."""
    plan = attention_plan(1, 16, 8, 128, 256, 132)
    assert (plan["kv"], plan["SPLITS"], plan["BLOCK_N"], plan["num_stages"], plan["combine"]) == \
        ("early", 8, 32, 1, "last_program")
    assert attention_plan(1, 16, 8, 128, 320, 132)["SPLITS"] == 12  # 10 blocks: no SPLITS of 10
    for batch, context in ((8, 256), (1, 2048), (1, 8192)):
        assert attention_plan(batch, 16, 8, 128, context, 132)["kv"] == "loop", (batch, context)
    assert attention_plan(1, 16, 8, 128, 256, 132, early=False)["kv"] == "loop"
    monkeypatch.setenv("KERNEL_SEARCH_ATTN_EARLY", "0")
    assert attention_plan(1, 16, 8, 128, 256, 132) == attention_plan(1, 16, 8, 128, 256, 132, early=False)
    monkeypatch.delenv("KERNEL_SEARCH_ATTN_EARLY")
    for batch in (1, 2, 4):
        for context in (1, 17, 100, 256, 1000):
            cfg = attention_plan(batch, 16, 8, 128, context, 132)
            assert check_config(cfg, AttentionProblem(batch, 16, 8, 128, context)) is None, (batch, context)
