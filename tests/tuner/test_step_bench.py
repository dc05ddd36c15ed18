"""tuner.step_bench: which arms a tune's end-to-end check times, what it stores and what ships, with the
GPU measurement replaced by made-up step times (the real one needs CUDA graphs)."""

from __future__ import annotations

import dataclasses
import math

import pytest

import tuner.step_bench as step_bench
from qwen3.config import PRESETS
from storage.export import build_table
from storage.steps import STREAM_ARM, StepRow, latest_run, shipped_table, table_hash
from storage.store import fingerprint_key
from tests.storage.fill import H100, UNFUSED

CONFIG = PRESETS["qwen3-0.6b"]


class FakeBench:
    """Stands in for measure(): records the arms it was given; step ms per arm from `steps` (the
    fixed-point stream arm, unless given, 10% slower than the table's; the fold arms 5% and 15%)."""

    def __init__(self, steps: dict[str, dict[int, float]]):
        self.steps, self.calls, self.arm_batches = steps, [], []
        for arm, slower in ((STREAM_ARM, 1.1), ("fold", 1.05), ("fold_fixed", 1.15)):
            if "table" in steps and arm not in steps:
                self.steps[arm] = {b: ms * slower for b, ms in steps["table"].items()}

    def __call__(self, config, arms, batches, dtype, progress=None, arm_batches=None):
        self.calls.append((config.name, [(arm, table) for arm, table in arms], list(batches), dtype))
        self.arm_batches.append(arm_batches)
        return [StepRow(arm, b, self.steps[arm][b], b * 1000 / self.steps[arm][b], 9.0)
                for arm, _ in arms for b in (arm_batches or {}).get(arm, batches)]


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
    assert [arm for arm, _ in call[1]] == ["unfused", "table", STREAM_ARM, "fold", "fold_fixed"]
    assert call[1][0][1] is None
    # The new table twice: its stream in the model dtype and in fixed point at every batch checked; and
    # twice more at batch 1, the one the fold serves, with decode attention's combine folded into o_proj.
    built = build_table(store, CONFIG.name, "H100")
    assert call[1][1][1] == dataclasses.replace(built, stream=((1, "model"), (16, "model")))
    assert call[1][2][1] == dataclasses.replace(built, stream=((1, "fixed"), (16, "fixed")))
    assert call[1][3][1] == dataclasses.replace(built, stream=((1, "model"),), fold=(1,))
    assert call[1][4][1] == dataclasses.replace(built, stream=((1, "fixed"),), fold=(1,))
    assert fake.arm_batches == [{"fold": [1], "fold_fixed": [1]}]
    assert call[2:] == ([1, 16], "bfloat16")
    assert check.no_previous == "no table for this GPU before this tune"
    assert [(v.batch, v.ships) for v in check.verdicts] == [(1, "table"), (16, "unfused")]
    assert check.replaced == {16: ["rmsnorm_qkv"]}
    run = latest_run(store, fingerprint_key(H100), CONFIG.name, "bfloat16")
    assert run.id == check.run_id and run.context == step_bench.CONTEXT and run.previous is None
    assert len(run.rows) == 8 and check.table_hash == run.table_hash
    shipped = shipped_table(store, CONFIG.name, "H100")
    assert shipped.replaced == {16: ["rmsnorm_qkv"]} and shipped.table.stream == ((1, "model"), (16, "model"))
    assert shipped.table.fold == ()  # the fold arms were slower


def test_a_retune_is_timed_against_the_table_shipped_before_it(filled, monkeypatch):
    store, info = filled
    previous = step_bench.previous_table(store, CONFIG.name, H100, "bfloat16")
    assert previous == build_table(store, CONFIG.name, "H100")
    retune(store, info)
    fake = FakeBench({"unfused": {1: 1.7}, "table": {1: 1.0}, "previous": {1: 0.9}})
    monkeypatch.setattr(step_bench, "measure", fake)
    check = step_bench.step_check(store, CONFIG, "bfloat16", H100, previous, [1])
    arms = dict(fake.calls[0][1])
    assert list(arms) == ["unfused", "table", STREAM_ARM, "fold", "fold_fixed", "previous"]
    assert arms["previous"] == previous
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
    assert [arm for arm, _ in fake.calls[0][1]] == ["unfused", "table", STREAM_ARM, "fold", "fold_fixed"]
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
    seen, calls = {}, []

    def bench_arms(config, arms, batches, contexts, output_len, breakdown=False, dtype=None, repeats=3, seed=0,
                   progress=None, arm_batches=None):
        seen.update(config=config.name, arms=arms, batches=batches, contexts=contexts, output_len=output_len,
                    dtype=dtype, repeats=repeats)
        calls.append([arm for arm, _ in arms])
        # Each arm measured later is slower by 1 ms: the mean of both orders (A B B A) cancels it.
        return [BenchRow(arm, b, contexts[0], prefill_ms=7.5, decode_ms=0.5 * b + i,
                         tokens_per_s=2000.0) for i, (arm, _) in enumerate(arms) for b in batches]

    monkeypatch.setattr(qwen3.bench, "bench_arms", bench_arms)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the table was measured on an H100, this is a CPU
        got = step_bench.measure(CONFIG, [("unfused", None), ("table", table)], [1, 4], "bfloat16")
    assert calls == [["unfused", "table", "table", "unfused"]]  # each arm once first, once last
    assert [(r.arm, r.batch, r.step_ms, r.tok_s, r.prefill_ms) for r in got] == [
        ("unfused", 1, 2.0, 500.0, 7.5), ("unfused", 4, 3.5, pytest.approx(4000 / 3.5), 7.5),
        ("table", 1, 2.0, 500.0, 7.5), ("table", 4, 3.5, pytest.approx(4000 / 3.5), 7.5)]
    assert (seen["contexts"], seen["output_len"], seen["dtype"], seen["repeats"]) == (
        [step_bench.CONTEXT], step_bench.OUTPUT_LEN, torch.bfloat16, step_bench.REPEATS)
    (_, plain), (_, tuned), (_, tuned_again), (_, plain_again) = seen["arms"]
    assert tuned_again is tuned and plain_again is plain
    assert isinstance(plain, Dispatcher) and plain.table is None and tuned.table == table


# ---- decode attention's buckets in the step -----------------------------------------------------


def _attention_store(tmp_path):
    from storage import Store
    from storage.export import import_table
    from tests.storage.test_attention_table import bucket, table

    store = Store(f"sqlite:///{tmp_path / 'attn.db'}")
    import_table(store, table([bucket(1, 4096), bucket(8, 4096), bucket(1, 32768)]))
    return store


def test_attention_cells_lie_inside_each_buckets_context_interval(tmp_path):
    from storage import load_table
    from tests.storage.test_attention_table import bucket, table

    loaded = load_table(table([bucket(1, 256), bucket(1, 4096), bucket(8, 4096), bucket(1, 32768),
                               bucket(8, 32768, "unfused")]))
    # (batch, context, slots), two a bucket: the context below plus two runs of OUTPUT_LEN steps, and
    # the geometric middle above the one below (half the first context).
    low = 2 * step_bench.OUTPUT_LEN
    assert step_bench.attention_cells(loaded, [1, 8]) == [
        (1, 256, low), (1, 256, 128), (1, 4096, 256 + low), (1, 4096, 1024), (8, 4096, 256 + low),
        (8, 4096, 1024), (1, 32768, 4096 + low), (1, 32768, 11585)]
    assert step_bench.attention_cells(loaded, [8]) == [(8, 4096, 256 + low), (8, 4096, 1024)]  # fused only
    # A bucket too short for a prompt and OUTPUT_LEN decode steps has no cell; the next one starts above it.
    short = load_table(table([bucket(1, step_bench.OUTPUT_LEN), bucket(1, 256)]))
    cells = sorted({step_bench.OUTPUT_LEN + low, math.isqrt(step_bench.OUTPUT_LEN * 256)})
    assert step_bench.attention_cells(short, [1]) == [(1, 256, slots) for slots in cells]
    gemm_only = load_table(table())
    gemm_only = type(gemm_only)(**{**gemm_only.__dict__, "ops": {"o_proj_residual": gemm_only.ops["o_proj_residual"]}})
    assert step_bench.attention_cells(gemm_only, [1]) == []


def test_attention_buckets_are_timed_in_the_step_and_the_plan_ships_where_faster(tmp_path, monkeypatch):
    from storage.steps import AttentionRow, describe

    store = _attention_store(tmp_path)
    monkeypatch.setattr(step_bench, "measure", FakeBench({"unfused": {1: 2.0, 8: 3.0}, "table": {1: 1.0, 8: 2.0}}))
    seen = []

    def measure_attention(config, table, cells, dtype, progress=None, skipped=None):
        seen.append(cells)
        rows = {(b, c): AttentionRow(b, c, s, 1.0, 0.9 if c == 32768 else 1.1) for b, c, s in cells}
        return list(rows.values())  # one a bucket, as measure_attention keeps (its last cell here)

    monkeypatch.setattr(step_bench, "measure_attention", measure_attention)
    with store:
        check = step_bench.step_check(store, CONFIG, "bfloat16", H100, None, [1, 8])
        low = 2 * step_bench.OUTPUT_LEN
        assert seen == [[(1, 4096, low), (1, 4096, 2048), (8, 4096, low), (8, 4096, 2048), (1, 32768, 4096 + low),
                         (1, 32768, 11585)]]
        assert check.replaced == {1: ["decode_attention ctx=32768"]}
        shipped = shipped_table(store, CONFIG.name, "H100")
        arms = {b.m: (b.arm, b.config) for b in shipped.table.ops["decode_attention"].buckets}
        assert arms[32768001] == ("plan", {}) and arms[4096001][0] == arms[4096008][0] == "fused"
        assert shipped.raw.ops["decode_attention"].buckets[-1].arm == "fused"  # the winner is kept as tuned
        assert [r["ships"] for r in shipped.record()["attention"]] == ["table", "table", "plan"]
        lines = describe(check.verdicts, check.replaced, check.attention)
        assert lines[0].startswith("the new table ships: its decode step is the fastest at every batch")
        assert lines[1].startswith("residual stream of the new table: the model dtype at batch 1, 8 (")
        assert lines[2] == ("decode attention's combine folded into o_proj at batch 1: no (1.050 ms folded vs "
                            "1.000 ms not)")
        assert lines[3] == "decode attention: the table's tuned config ships at 2 of 3 buckets measured in the step"
        assert lines[4].startswith("M=1 ctx=32768: the default plan's step is faster over a cache of 11585 slots "
                                   "(0.900 ms vs 1.000 ms with the tuned config)")
        # The exported table serves caches of 4,097-32,768 slots at batch 1 with the plan (the dispatcher
        # runs a plan bucket's default plan: tests/qwen3/test_attention_dispatch.py).
        entry = shipped.table.ops["decode_attention"]
        assert entry.attention_lookup(1, 20000)[0].arm == "plan" and entry.attention_lookup(1, 3000)[0].arm == "fused"


def test_an_attention_row_of_no_bucket_is_refused(tmp_path, monkeypatch):
    from storage.steps import AttentionRow

    store = _attention_store(tmp_path)
    monkeypatch.setattr(step_bench, "measure", FakeBench({"unfused": {1: 2.0}, "table": {1: 1.0}}))
    for bad, match in ((AttentionRow(1, 8192, 100, 1.0, 1.0), "no decode_attention bucket"),
                       (AttentionRow(1, 4096, 5000, 1.0, 1.0), "slots 5000 is not in the bucket's context"),
                       (AttentionRow(1, 4096, 100, float("nan"), 1.0), "table_ms must be a finite number")):
        monkeypatch.setattr(step_bench, "measure_attention", lambda *a, bad=bad, **k: [bad])
        with store, pytest.raises(ValueError, match=match):
            step_bench.step_check(store, CONFIG, "bfloat16", H100, None, [1])


def test_measure_attention_times_each_cell_with_the_table_and_with_the_plan(tmp_path, monkeypatch):
    import qwen3.bench
    from qwen3.bench import BenchRow
    from storage import load_table
    from tests.storage.test_attention_table import bucket, table

    loaded = load_table(table([bucket(1, 4096), bucket(8, 4096)]))
    calls = []

    def bench_cell(model, arm, batch, context, output_len, repeats=3, seed=0, breakdown=False):
        calls.append((arm, "decode_attention" in model.dispatcher.table.ops, batch, context + output_len, repeats))
        return BenchRow(arm, batch, context, prefill_ms=1.0, decode_ms=2.0 if arm == "table" else 1.5,
                        tokens_per_s=1.0)

    class Model:
        def set_dispatcher(self, ops):
            self.dispatcher = ops

    monkeypatch.setattr(qwen3.bench, "bench_cell", bench_cell)
    monkeypatch.setattr(qwen3.bench, "random_weights", lambda *a, **k: Model())
    with pytest.warns(RuntimeWarning):  # an H100 table on a machine without one
        rows = step_bench.measure_attention(CONFIG, loaded, [(1, 4096, 2048), (8, 4096, 2048)], "bfloat16")
    # Each cell: table, plan, plan, table (the mean of each arm's two).
    arms = [("table", True), ("plan", False), ("plan", False), ("table", True)]
    assert calls == [(arm, has, batch, 2048, step_bench.REPEATS) for batch in (1, 8) for arm, has in arms]
    assert [(r.batch, r.context, r.slots, r.table_ms, r.plan_ms, r.ships) for r in rows] == [
        (1, 4096, 2048, 2.0, 1.5, "plan"), (8, 4096, 2048, 2.0, 1.5, "plan")]


def test_measure_attention_keeps_a_buckets_cell_where_the_tuned_config_fares_worst(monkeypatch):
    import qwen3.bench
    from qwen3.bench import BenchRow
    from storage import load_table
    from tests.storage.test_attention_table import bucket, table

    loaded = load_table(table([bucket(1, 4096), bucket(8, 4096)]))
    # (batch, cache slots) -> (table ms, plan ms): at batch 1 the tuned config wins at the middle but
    # loses near the low end; at batch 8 it wins at both, by less at the low end.
    times = {(1, 320): (2.0, 1.5), (1, 2048): (1.0, 1.2), (8, 320): (1.9, 2.0), (8, 2048): (1.0, 2.0)}

    def bench_cell(model, arm, batch, context, output_len, repeats=3, seed=0, breakdown=False):
        table_ms, plan_ms = times[batch, context + output_len]
        return BenchRow(arm, batch, context, prefill_ms=1.0, decode_ms=table_ms if arm == "table" else plan_ms,
                        tokens_per_s=1.0)

    class Model:
        def set_dispatcher(self, ops):
            pass

    monkeypatch.setattr(qwen3.bench, "bench_cell", bench_cell)
    monkeypatch.setattr(qwen3.bench, "random_weights", lambda *a, **k: Model())
    with pytest.warns(RuntimeWarning):
        rows = step_bench.measure_attention(CONFIG, loaded, [(1, 4096, 320), (1, 4096, 2048), (8, 4096, 320),
                                                             (8, 4096, 2048)], "bfloat16")
    assert [(r.batch, r.slots, r.table_ms, r.plan_ms, r.ships) for r in rows] == [
        (1, 320, 2.0, 1.5, "plan"), (8, 320, 1.9, 2.0, "table")]


def test_an_attention_cell_out_of_gpu_memory_is_left_out_and_said(monkeypatch):
    import torch

    import qwen3.bench
    from qwen3.bench import BenchRow
    from storage import load_table
    from tests.storage.test_attention_table import bucket, table

    loaded = load_table(table([bucket(1, 4096), bucket(8, 4096)]))

    def bench_cell(model, arm, batch, context, output_len, repeats=3, seed=0, breakdown=False):
        if batch == 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return BenchRow(arm, batch, context, prefill_ms=1.0, decode_ms=1.0, tokens_per_s=1.0)

    class Model:
        def set_dispatcher(self, ops):
            pass

    monkeypatch.setattr(qwen3.bench, "bench_cell", bench_cell)
    monkeypatch.setattr(qwen3.bench, "random_weights", lambda *a, **k: Model())
    skipped = []
    with pytest.warns(RuntimeWarning):
        rows = step_bench.measure_attention(CONFIG, loaded, [(1, 4096, 2048), (8, 4096, 2048)], "bfloat16",
                                            skipped=skipped)
    assert [(r.batch, r.ships) for r in rows] == [(1, "table")]
    assert skipped == ["decode attention at batch 8 over a cache of 2048 slots ran out of GPU memory: its bucket "
                       "(ctx=4096) is kept as tuned"]
