"""The tuner's define-by-run space: pruned by shape, conditional parameters, round trip with enqueue."""

import optuna
import pytest

import kernel_space as ks
from tuner.candidates import default_configs
from tuner.space import choices, config_to_params, suggest


@pytest.mark.parametrize("op, m, n, k", [("rmsnorm_qkv", 1, 4096, 1024), ("o_proj_residual", 16, 1024, 2048),
                                         ("rmsnorm_gate_up_silu", 256, 6144, 1024), ("down_residual", 3, 72, 136)])
def test_defaults_round_trip_through_params(op, m, n, k):
    for cfg in default_configs(op, m, n, k, 2):
        params = config_to_params(cfg, op, m, n, k)
        assert params is not None, cfg
        assert suggest(optuna.trial.FixedTrial(params), op, m, n, k) == cfg


def test_shape_prunes_the_choices():
    c = choices("o_proj_residual", 1, 72, 64)
    assert c["BLOCK_M_dot"] == (16,) and c["BLOCK_M_fma"] == (1,)
    assert max(c["BLOCK_N_dot"]) == 128 and max(c["BLOCK_K"]) == 64
    assert "prologue" not in c and "prologue" in choices("rmsnorm_qkv", 1, 72, 64)
    assert choices("down_residual", 1024, 1024, 3072)["path"] == ("dot",)  # no FMA block fits M = 1024


def test_sampled_configs_are_mostly_valid():
    """Pruning leaves only the register and shared-memory limits to refuse configs."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    spec = ks.get_op("rmsnorm_gate_up_silu")
    refused = 0
    for _ in range(200):
        cfg = suggest(study.ask(), "rmsnorm_gate_up_silu", 4, 6144, 1024)
        if cfg["impl"] == "fused":
            why = spec.check(cfg, 4, 6144, 1024, 2)
            assert why is None or "spill" in why or "shared memory" in why or "empty splits" in why, why
            refused += why is not None
    assert refused < 100


def test_unfused_has_no_other_params():
    assert suggest(optuna.trial.FixedTrial({"impl": "unfused"}), "down_residual", 1, 72, 136) == {"impl": "unfused"}
