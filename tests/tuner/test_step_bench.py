"""tuner.step_bench: which arms a tune's end-to-end check times, what it stores and what ships, with the
GPU measurement replaced by made-up step times (the real one needs CUDA graphs)."""

from __future__ import annotations

import pytest

import tuner.step_bench as step_bench
from qwen3.config import PRESETS
from storage.export import build_table
from storage.steps import StepRow, latest_run, shipped_table, table_hash
from storage.store import fingerprint_key
from tests.storage.fill import H100, UNFUSED

CONFIG = PRESETS["qwen3-0.6b"]


class FakeBench:
    """Stands in for measure(): records the arms it was given; step ms per arm from `steps`."""

    def __init__(self, steps: dict[str, dict[int, float]]):
        self.steps, self.calls = steps, []

    def __call__(self, config, arms, batches, dtype, progress=None):
        self.calls.append((config.name, [(arm, table) for arm, table in arms], list(batches), dtype))
        return [StepRow(arm, b, self.steps[arm][b], b * 1000 / self.steps[arm][b], 9.0)
                for arm, _ in arms for b in batches]


def retune(store, info) -> None:
    """What a tune that finds a new winner does: o_proj_residual at M = 1 now runs unfused."""
    ref = info.studies[("NVIDIA H100 80GB HBM3", CONFIG.name, "o_proj_residual", 1)]
    store.set_winner(ref.id, arm="unfused", config=UNFUSED, median_us=7.3, unfused_us=7.3, cublas_us=None,
                     floor_us=None, speedup=1.0, speedup_vs_cublas=None)


def test_the_default_batches_are_the_tuned_decode_buckets():
    assert step_bench.default_batches([512, 1, 16, 256, 4096]) == [1, 16, 256]
    assert step_bench.default_batches([512, 1024]) == []


def test_a_first_tune_times_the_table_against_unfused_and_stores_it(filled, monkeypatch):
    store, _ = filled
    fake = FakeBench({"unfused": {1: 1.7, 16: 2.0}, "table": {1: 0.94, 16: 2.1}})
    monkeypatch.setattr(step_bench, "measure", fake)
    check = step_bench.step_check(store, CONFIG, "bfloat16", H100, None, [1, 16])
    (call,) = fake.calls
    assert [arm for arm, _ in call[1]] == ["unfused", "table"] and call[1][0][1] is None
    assert call[1][1][1] == build_table(store, CONFIG.name, "H100") and call[2:] == ([1, 16], "bfloat16")
    assert check.no_previous == "no table for this GPU before this tune"
    assert [(v.batch, v.ships) for v in check.verdicts] == [(1, "table"), (16, "unfused")]
    assert check.replaced == {16: ["rmsnorm_qkv"]}
    run = latest_run(store, fingerprint_key(H100), CONFIG.name, "bfloat16")
    assert run.id == check.run_id and run.context == step_bench.CONTEXT and run.previous is None
    assert len(run.rows) == 4 and check.table_hash == run.table_hash
    assert shipped_table(store, CONFIG.name, "H100").replaced == {16: ["rmsnorm_qkv"]}


def test_a_retune_is_timed_against_the_table_shipped_before_it(filled, monkeypatch):
    store, info = filled
    previous = step_bench.previous_table(store, CONFIG.name, H100, "bfloat16")
    assert previous == build_table(store, CONFIG.name, "H100")
    retune(store, info)
    fake = FakeBench({"unfused": {1: 1.7}, "table": {1: 1.0}, "previous": {1: 0.9}})
    monkeypatch.setattr(step_bench, "measure", fake)
    check = step_bench.step_check(store, CONFIG, "bfloat16", H100, previous, [1])
    arms = dict(fake.calls[0][1])
    assert list(arms) == ["unfused", "table", "previous"] and arms["previous"] == previous
    assert check.no_previous is None and [v.ships for v in check.verdicts] == ["previous"]
    # The new per-op winner made the step slower: export brings the previous choice back at M = 1.
    shipped = shipped_table(store, CONFIG.name, "H100")
    assert shipped.table.ops["o_proj_residual"].buckets[0] == previous.ops["o_proj_residual"].buckets[0]
    assert shipped.replaced == {1: ["o_proj_residual"]}
    # The next tune's previous arm is what export ships now, not the raw winners.
    assert step_bench.previous_table(store, CONFIG.name, H100, "bfloat16") == shipped.table


def test_an_unchanged_table_is_not_timed_twice(filled, monkeypatch):
    store, _ = filled
    previous = step_bench.previous_table(store, CONFIG.name, H100, "bfloat16")
    fake = FakeBench({"unfused": {1: 1.7}, "table": {1: 0.9}})
    monkeypatch.setattr(step_bench, "measure", fake)
    check = step_bench.step_check(store, CONFIG, "bfloat16", H100, previous, [1])
    assert [arm for arm, _ in fake.calls[0][1]] == ["unfused", "table"]
    assert check.no_previous == "the previous table made the same choices"
    assert latest_run(store, fingerprint_key(H100), CONFIG.name, "bfloat16").previous is None
    assert check.table_hash == table_hash(previous)


def test_no_winners_no_check(store, monkeypatch):
    from storage import StorageError

    monkeypatch.setattr(step_bench, "measure", FakeBench({}))
    assert step_bench.previous_table(store, CONFIG.name, H100, "bfloat16") is None
    with pytest.raises(StorageError, match="no winners"):
        step_bench.step_check(store, CONFIG, "bfloat16", H100, None, [1])


def test_measure_runs_the_bench_commands_cells_and_keeps_their_numbers(filled, monkeypatch):
    import warnings

    import torch

    import qwen3.bench
    from qwen3.bench import BenchRow
    from qwen3.dispatch import Dispatcher

    store, _ = filled
    table = build_table(store, CONFIG.name, "H100")
    seen = {}

    def bench_arms(config, arms, batches, contexts, output_len, breakdown=False, dtype=None, repeats=3, seed=0,
                   progress=None):
        seen.update(config=config.name, arms=arms, batches=batches, contexts=contexts, output_len=output_len,
                    dtype=dtype, repeats=repeats)
        return [BenchRow(arm, b, contexts[0], prefill_ms=7.5, decode_ms=0.5 * b, tokens_per_s=2000.0)
                for arm, _ in arms for b in batches]

    monkeypatch.setattr(qwen3.bench, "bench_arms", bench_arms)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the table was measured on an H100, this is a CPU
        got = step_bench.measure(CONFIG, [("unfused", None), ("table", table)], [1, 4], "bfloat16")
    assert [(r.arm, r.batch, r.step_ms, r.tok_s, r.prefill_ms) for r in got] == [
        ("unfused", 1, 0.5, 2000.0, 7.5), ("unfused", 4, 2.0, 2000.0, 7.5),
        ("table", 1, 0.5, 2000.0, 7.5), ("table", 4, 2.0, 2000.0, 7.5)]
    assert (seen["contexts"], seen["output_len"], seen["dtype"], seen["repeats"]) == (
        [step_bench.CONTEXT], step_bench.OUTPUT_LEN, torch.bfloat16, step_bench.REPEATS)
    (_, plain), (_, tuned) = seen["arms"]
    assert isinstance(plain, Dispatcher) and plain.table is None and tuned.table == table
