"""The tuner's define-by-run space: only configs the op's check accepts, round trip with enqueue (decode
attention's too)."""

import optuna
import pytest

import kernel_space as ks
from kernel_space.attention_shape import decode_heads, decode_m, encode_m
from kernel_space.decode_attention import plan_from_qkv
from tuner.candidates import default_configs
from tuner.space import config_to_params, suggest

CASES = [("rmsnorm_qkv", 1, 4096, 1024), ("o_proj_residual", 16, 1024, 2048), ("rmsnorm_gate_up_silu", 256, 6144, 1024),
         ("down_residual", 3, 72, 136), ("rmsnorm_gate_up_silu", 4, 6144, 1024)]


@pytest.mark.parametrize("op, m, n, k", CASES)
def test_defaults_round_trip_through_params(op, m, n, k):
    for cfg in default_configs(op, m, n, k, 2):
        params = config_to_params(cfg, op, m, n, k)
        assert params is not None, cfg
        assert suggest(optuna.trial.FixedTrial(params), op, m, n, k) == cfg


@pytest.mark.parametrize("op, m, n, k", CASES)
def test_no_proposal_is_refused_by_the_check(op, m, n, k):
    """Random and TPE proposals alike pass check_config: no ask is wasted on a config the space could
    have ruled out (the committed 0.6B tune spent 448 of 899 trials on such configs)."""
    spec = ks.get_op(op)
    for sampler in (optuna.samplers.RandomSampler(seed=0), optuna.samplers.TPESampler(seed=0, multivariate=True)):
        study = optuna.create_study(sampler=sampler)
        for _ in range(60):
            trial = study.ask()
            cfg = suggest(trial, op, m, n, k)
            if cfg["impl"] == "fused":
                assert spec.check(cfg, m, n, k, 2) is None, cfg
            study.tell(trial, float(len(ks.config_key(cfg)) % 7))


@pytest.mark.parametrize("op, m, n, k, elem_bytes, smem", [("rmsnorm_qkv", 1, 4096, 1024, 2, 232_448),
                                                           ("down_residual", 256, 1024, 3072, 2, 232_448),
                                                           ("rmsnorm_gate_up_silu", 3, 96, 40, 4, 101_376)])
def test_the_pruned_walk_offers_exactly_the_checked_grid(op, m, n, k, elem_bytes, smem):
    """The space is enumerated with block_range and max_split pruning first (a study's start took over a
    second walking all 345,600 fused configs through check): it must offer what the whole grid filtered
    by check, the redundancy rule and the FMA heuristic offers, no more and no fewer."""
    from tuner import space
    from tuner.candidates import valid_configs

    whole = {tuple(c[p] for p in space.ORDER) + (c["GROUP_M"], c["prologue"])
             for c in valid_configs(op, m, n, k, elem_bytes, smem)
             if not (c["path"] == "fma" and (m > space.FMA_MAX_M or c["BLOCK_M"] > space.FMA_MAX_BLOCK_M))
             and ks.get_op(op).redundant(c, m, n, k, elem_bytes) is None}
    offered = space._space(op, m, n, k, elem_bytes, smem)
    assert len(offered) == len(set(offered)) and set(offered) == whole


def test_split_k_is_asked_among_the_splits_that_leave_none_empty():
    seen = set()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(200):
        cfg = suggest(study.ask(), "o_proj_residual", 1, 72, 64)  # K = 64: BLOCK_K 32 allows SPLIT_K 2 at most
        if cfg["impl"] == "fused":
            assert cfg["SPLIT_K"] * cfg["BLOCK_K"] <= 64 or cfg["SPLIT_K"] == 1
            seen.add((cfg["BLOCK_K"], cfg["SPLIT_K"]))
    assert (32, 2) in seen and (64, 1) in seen


def test_fma_only_at_small_m():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    paths = {suggest(study.ask(), "down_residual", 1024, 1024, 3072).get("path") for _ in range(40)}
    assert "fma" not in paths and "dot" in paths


def test_a_config_outside_the_space_has_no_params():
    bad = dict(impl="fused", path="fma", BLOCK_M=16, BLOCK_N=64, BLOCK_K=128, SPLIT_K=1, GROUP_M=1, num_warps=2,
               num_stages=1, split_reduce="kernel", prologue="inline")
    assert config_to_params(bad, "o_proj_residual", 1, 1024, 2048) is None


def test_unfused_has_no_other_params():
    assert suggest(optuna.trial.FixedTrial({"impl": "unfused"}), "down_residual", 1, 72, 136) == {"impl": "unfused"}


ATTENTION = "decode_attention"
N, K = 4002, 16  # qwen3-tiny: 4 heads over 2 KV heads of 16
ATTENTION_CASES = [(encode_m(1, 64), N, K), (encode_m(4, 300), N, K), (encode_m(8, 4096), 16008, 128)]


@pytest.mark.parametrize("m, n, k", ATTENTION_CASES)
def test_attention_defaults_round_trip_and_start_with_the_plan(m, n, k):
    configs = default_configs(ATTENTION, m, n, k, 2)
    batch, context = decode_m(m)
    heads, kv_heads, head_dim = decode_heads(n, k)
    assert configs[0] == plan_from_qkv(batch, heads, kv_heads, head_dim, context, 132, 2)
    for cfg in configs:
        params = config_to_params(cfg, ATTENTION, m, n, k)
        assert params is not None, cfg
        assert suggest(optuna.trial.FixedTrial(params), ATTENTION, m, n, k) == cfg


@pytest.mark.parametrize("m, n, k", ATTENTION_CASES)
def test_attention_proposals_run_and_repeat_no_other_config(m, n, k):
    """Every fused proposal passes the check and is not redundant at the study's batch and context;
    the walk reaches several SPLITS, both packs and both combines."""
    spec = ks.get_op(ATTENTION)
    seen = {key: set() for key in ("SPLITS", "pack", "combine")}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(80):
        trial = study.ask()
        cfg = suggest(trial, ATTENTION, m, n, k)
        if cfg["impl"] == "fused":
            assert set(cfg) == set(spec.space.values)
            assert spec.check(cfg, m, n, k, 2) is None and spec.redundant(cfg, m, n, k, 2) is None, cfg
            for key, values in seen.items():
                values.add(cfg[key])
        study.tell(trial, 1.0)
    assert len(seen["SPLITS"]) > 1 and seen["pack"] == {"group", "head"}
    assert seen["combine"] == {"kernel", "last_program"}


def test_attention_splits_stop_at_the_context():
    """At 64 slots BLOCK_N 16 gives 4 blocks: no proposal has more splits than blocks of the context."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=4))
    for _ in range(60):
        cfg = suggest(study.ask(), ATTENTION, encode_m(2, 64), N, K)
        if cfg["impl"] == "fused":
            assert cfg["SPLITS"] <= 64 // cfg["BLOCK_N"] and cfg["BLOCK_N"] <= 64


def test_rescan_is_offered_to_norm_ops_with_a_k_loop_only():
    from kernel_space.spec import has_k_loop
    from tuner import space

    keys = (*space.ORDER, "GROUP_M", "prologue")
    for op, m, n, k in CASES:
        rows = [dict(zip(keys, row, strict=True)) for row in space._space(op, m, n, k, 2, 232_448)]
        rescans = [r for r in rows if r["prologue"] == "rescan"]
        if ks.get_op(op).norm:
            assert rescans and all(has_k_loop(r, k) for r in rescans)
            assert any(r["prologue"] == "inline" and not has_k_loop(r, k) for r in rows)
        else:
            assert not rescans


ONE_BLOCK = dict(impl="fused", path="dot", BLOCK_M=16, BLOCK_N=64, BLOCK_K=128, SPLIT_K=16, GROUP_M=1, num_warps=4,
                 num_stages=4, split_reduce="last_program", prologue="inline")


def test_a_split_of_one_k_block_is_offered_at_one_stage_only():
    """K = 2048 over 16 splits of BLOCK_K 128: no K loop, so stages 2-5 build num_stages=1's kernel (the
    sm_90 compile test shows it) and the space offers that one config, not five."""
    op, m, n, k = "o_proj_residual", 1, 1024, 2048
    spec = ks.get_op(op)
    assert spec.check(ONE_BLOCK, m, n, k, 2) is None  # it runs: a redundant config is not a refused one
    assert "num_stages=1 builds the same kernel" in spec.redundant(ONE_BLOCK, m, n, k, 2)
    twin = {**ONE_BLOCK, "num_stages": 1}
    assert spec.redundant(twin, m, n, k, 2) is None and spec.canonical(ONE_BLOCK, m, n, k) == twin
    # A seed that is the redundant twin is enqueued as the config it runs as.
    assert suggest(optuna.trial.FixedTrial(config_to_params(ONE_BLOCK, op, m, n, k)), op, m, n, k) == twin
    # With a K loop (4 splits of 4 blocks), stages are a choice.
    looped = {**ONE_BLOCK, "SPLIT_K": 4}
    assert spec.redundant(looped, m, n, k, 2) is None and spec.canonical(looped, m, n, k) == looped
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    stages = {(c["SPLIT_K"] * c["BLOCK_K"] >= k, c["num_stages"])
              for c in (suggest(study.ask(), op, m, n, k) for _ in range(400)) if c["impl"] == "fused"}
    assert {s for one, s in stages if one} == {1} and {s for one, s in stages if not one} == {1, 2, 3, 4, 5}


def test_grouping_one_row_block_is_redundant():
    spec = ks.get_op("o_proj_residual")
    grouped = {**ONE_BLOCK, "GROUP_M": 8, "num_stages": 1}
    assert "GROUP_M=8: one row block" in spec.redundant(grouped, 1, 1024, 2048, 2)
    assert spec.redundant(grouped, 64, 1024, 2048, 2) is None  # four row blocks of 16
    assert spec.canonical(grouped, 1, 1024, 2048)["GROUP_M"] == 1


def test_attention_seeds_are_not_rewritten():
    spec = ks.get_op("decode_attention")
    cfg = {"impl": "fused", "SPLITS": 4, "BLOCK_N": 64}
    assert spec.canonical(cfg, encode_m(8, 4096), 16008, 128) is cfg
