"""The query frames over the filled database (tests/storage/fill.py), one filter at a time."""

from __future__ import annotations

import pandas as pd
import pytest

from storage.queries import (
    FAILURE_COLUMNS,
    STUDIES_COLUMNS,
    TRIAL_COLUMNS,
    WINNER_COLUMNS,
    failures_frame,
    known_models,
    reason_pattern,
    studies_frame,
    trials_frame,
    winners_frame,
)
from tests.storage.fill import COMPILE_REASON, FUSED, INCORRECT_REASON, UNFUSED, WINNERS

H100 = "NVIDIA H100 80GB HBM3"


def keys(frame) -> set[tuple]:
    return {(row.gpu, row.op, row.n, row.k, row.m) for row in frame.itertuples()}


def expected(pred) -> set[tuple]:
    """WINNERS rows (with a winner) matching pred, in the keys() form."""
    from tests.storage.fill import shape

    return {(gpu["device_name"], op, *shape(model, op), m)
            for gpu, model, op, m, arm, *times in WINNERS if arm is not None and pred(gpu, model, op, m, arm, times)}


def test_winners_unfiltered(filled):
    store, info = filled
    frame = winners_frame(store)
    assert list(frame.columns) == WINNER_COLUMNS
    assert len(frame) == info.winners == 9
    assert keys(frame) == expected(lambda *a: True)
    row = frame[(frame.gpu == H100) & (frame.op == "rmsnorm_qkv") & (frame.m == 1)].iloc[0]
    assert row.models == "qwen3-0.6b,qwen3-0.6b-ft"
    assert (row.arm, row.config, row.median_us, row.unfused_us, row.cublas_us, row.floor_us) == (
        "fused", FUSED, 4.9, 20.3, 6.0, 2.8)
    assert row.speedup == pytest.approx(20.3 / 4.9, rel=1e-3)
    assert row.speedup_vs_cublas == pytest.approx(6.0 / 4.9, rel=1e-3)
    assert frame[frame.arm == "unfused"].config.tolist() == [UNFUSED, UNFUSED]


@pytest.mark.parametrize(("kwargs", "pred"), [
    (dict(gpu="h200"), lambda gpu, model, op, m, arm, t: gpu["device_name"] == "NVIDIA H200"),
    (dict(gpu="H100 80GB"), lambda gpu, model, op, m, arm, t: gpu["device_name"] == H100),
    (dict(model="qwen3-8b"), lambda gpu, model, op, m, arm, t: model == "qwen3-8b"),
    (dict(model="qwen3-0.6b-ft"), lambda gpu, model, op, m, arm, t: model == "qwen3-0.6b"),
    (dict(op="down_residual"), lambda gpu, model, op, m, arm, t: op == "down_residual"),
    (dict(m_min=16), lambda gpu, model, op, m, arm, t: m >= 16),
    (dict(m_max=1), lambda gpu, model, op, m, arm, t: m <= 1),
    (dict(m_min=2, m_max=16), lambda gpu, model, op, m, arm, t: 2 <= m <= 16),
    (dict(min_speedup=3.0), lambda gpu, model, op, m, arm, t: t[1] / t[0] >= 3.0),
    (dict(beats_cublas=True), lambda gpu, model, op, m, arm, t: arm == "fused" and t[2] > t[0]),
    (dict(model="qwen3-0.6b", op="rmsnorm_qkv", gpu="H100"),
     lambda gpu, model, op, m, arm, t: (model, op, gpu["device_name"]) == ("qwen3-0.6b", "rmsnorm_qkv", H100)),
])
def test_winners_filters(filled, kwargs, pred):
    store, _ = filled
    want = expected(pred)
    assert want, "each filter case must select something"
    assert keys(winners_frame(store, **kwargs)) == want


def test_winners_gpu_by_fingerprint_key_prefix(filled):
    store, info = filled
    ref = info.studies[("NVIDIA H200", "qwen3-0.6b", "rmsnorm_qkv", 1)]
    frame = winners_frame(store, gpu=ref.fingerprint_key[:6])
    assert frame.fingerprint.tolist() == [ref.fingerprint_key]


def test_like_wildcards_in_filters_are_literal(filled):
    store, _ = filled
    assert winners_frame(store, gpu="%").empty
    assert winners_frame(store, gpu="H_00").empty
    assert winners_frame(store, model="qwen3-%").empty


def test_empty_frames_keep_their_columns(store):
    assert list(winners_frame(store).columns) == WINNER_COLUMNS
    assert list(trials_frame(store).columns) == TRIAL_COLUMNS
    assert list(studies_frame(store).columns) == STUDIES_COLUMNS
    assert list(failures_frame(store).columns) == FAILURE_COLUMNS


def test_trials_frame_and_filters(filled):
    store, info = filled
    frame = trials_frame(store)
    assert list(frame.columns) == TRIAL_COLUMNS and len(frame) == info.trials == 44
    ref = info.studies[(H100, "qwen3-0.6b", "rmsnorm_qkv", 1)]
    mine = trials_frame(store, study_id=ref.id)
    assert len(mine) == 8 and set(mine.study_id) == {ref.id}
    assert mine.trial_number.isna().sum() == 2  # the two baselines
    assert sorted(trials_frame(store, status="incorrect").reason) == [INCORRECT_REASON]
    assert len(trials_frame(store, arm="cublas")) == 10
    assert set(trials_frame(store, model="qwen3-8b").op) == {"rmsnorm_qkv", "down_residual"}
    assert len(trials_frame(store, gpu="H200")) == 4
    assert set(trials_frame(store, m_min=16).m) == {16, 256}


def test_studies_frame_counts_and_best(filled):
    store, info = filled
    frame = studies_frame(store)
    assert list(frame.columns) == STUDIES_COLUMNS and len(frame) == len(WINNERS)
    ref = info.studies[(H100, "qwen3-0.6b", "rmsnorm_qkv", 1)]
    row = frame.set_index("study_id").loc[ref.id]
    assert (row["name"], row.trials, row.ok, row.failed, row.incorrect) == (ref.name, 8, 4, 3, 1)
    # Best of the ok fused/unfused trials: the cuBLAS bound (6.0) is not a candidate.
    assert row.best_us == pytest.approx(4.9)
    assert (row.winner_arm, row.speedup) == ("fused", pytest.approx(20.3 / 4.9, rel=1e-3))
    pending = frame[frame.op.eq("down_residual") & frame.m.eq(16)].iloc[0]
    assert pending.trials == 4 and pd.isna(pending.winner_arm)
    assert len(studies_frame(store, gpu="H200", model="qwen3-0.6b")) == 1
    assert set(studies_frame(store, m_max=1).m) == {1}


def test_failures_grouped_by_reason(filled):
    store, _ = filled
    frame = failures_frame(store)
    assert list(frame.columns) == FAILURE_COLUMNS
    assert frame[["status", "reason", "count", "studies", "ops"]].values.tolist() == [
        ["failed", "invalid config: shared memory estimate # B exceeds the device limit # B", 2, 1, "rmsnorm_qkv"],
        ["failed", "CompilationError: at #:#: out of resource: registers", 1, 1, "rmsnorm_qkv"],
        ["incorrect", "rel error # > #", 1, 1, "rmsnorm_qkv"],
    ]
    assert frame.example.iloc[1] == COMPILE_REASON
    assert failures_frame(store, model="qwen3-8b").empty
    assert failures_frame(store, gpu="H200").empty


@pytest.mark.parametrize(("reason", "pattern"), [
    ("shared memory estimate 245760 B exceeds 232448 B", "shared memory estimate # B exceeds # B"),
    ("BLOCK_M=128 exceeds the padded M (16) for M=1", "BLOCK_M=# exceeds the padded M (#) for M=#"),
    ("rel error 1.5e-02 > 1e-02 in float16", "rel error # > # in float16"),
    ("path=dot needs BLOCK_M and BLOCK_N >= 16", "path=dot needs BLOCK_M and BLOCK_N >= #"),
    (None, "(no reason)"),
])
def test_reason_pattern(reason, pattern):
    assert reason_pattern(reason) == pattern


def test_known_models(filled):
    store, _ = filled
    assert known_models(store) == ["qwen3-0.6b", "qwen3-0.6b-ft", "qwen3-8b"]


def test_public_api_resolves():
    import storage

    for name in storage.__all__:
        assert getattr(storage, name) is not None, name
    assert storage.winners_frame is winners_frame
    with pytest.raises(AttributeError):
        storage.no_such_frame  # noqa: B018
