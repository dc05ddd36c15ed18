"""End-to-end step checks in the database (storage.steps): migration 0003 from a 0002 database with
its rows kept, storing and reading runs, the rule that keeps a slower table from shipping, and what
export and the frames make of it; on SQLite and PostgreSQL alike (tests/storage/conftest.py)."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import sqlalchemy
from alembic import command
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage import Fingerprint, Shape, Store, Study, Trial, Winner, migrate
from storage.engine import make_engine
from storage.export import build_table
from storage.models import QueueEntry, StepBench, StepFold, StepRun, StepStream, utcnow
from storage.queries import STEP_COLUMNS, steps_frame
from storage.steps import (
    StepRow,
    Verdict,
    apply_verdicts,
    decide,
    describe,
    latest_run,
    record_run,
    shipped_table,
    table_hash,
)
from storage.store import fingerprint_key
from tests.storage.fill import FUSED, H100, H200, UNFUSED

MODEL = "qwen3-0.6b"


def rows(**ms: dict[int, float]) -> list[StepRow]:
    """StepRows from {arm: {batch: step ms}} (tok/s follows from the step, prefill a fixed 10 ms)."""
    return [StepRow(arm, batch, step, batch * 1000 / step, 10.0) for arm, steps in ms.items()
            for batch, step in steps.items()]


# ---- migration ------------------------------------------------------------------------------


def _h100_row(s) -> Fingerprint:
    """The H100's fingerprint row, written by hand (a database at an old revision has no Store)."""
    fp = Fingerprint(key=fingerprint_key(H100), device_name=H100["device_name"], capability="9.0", sm_count=132,
                     total_memory=H100["total_memory"], driver="570", cuda="12.8", torch="2.11", triton="3.6",
                     kernel_hashes=H100["kernel_hashes"])
    s.add(fp)
    s.flush()
    return fp


def _engine_at(url: str, revision: str):
    """An engine on a new database migrated only up to `revision` (an older database to upgrade)."""
    engine = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(migrate._config(conn), revision)
    return engine


def test_migration_0003_from_a_0002_database_keeps_its_rows(new_db_url):
    url = new_db_url("at0002")
    engine = _engine_at(url, "0002")
    with Session(engine) as s, s.begin():
        fp = _h100_row(s)
        shape_row = Shape(op="rmsnorm_qkv", n=4096, k=1024, dtype="bfloat16")
        s.add(shape_row)
        s.flush()
        study = Study(fingerprint_id=fp.id, shape_id=shape_row.id, m=1, optuna_study_name="kept")
        s.add(study)
        s.flush()
        s.add(Trial(study_id=study.id, trial_number=0, arm="fused", config=FUSED, config_key="k", status="ok",
                    median_us=4.9))
        s.add(Winner(study_id=study.id, arm="fused", config=FUSED, median_us=4.9, unfused_us=20.3, speedup=4.14))
        # Core, with 0002's columns only (the ORM's row has those of head: ks_queue.plan is 0007's)
        s.execute(sqlalchemy.insert(QueueEntry.__table__).values(study_id=study.id, model=MODEL, trials=8, priority=0,
                                                                 state="done", created_at=utcnow()))
    with engine.connect() as conn:
        assert migrate.current(conn) == "0002"
        assert not sqlalchemy.inspect(conn).has_table("ks_step_runs")
    engine.dispose()
    with Store(url) as store:  # a writing open migrates to head
        with store.engine.connect() as conn:
            assert migrate.current(conn) == migrate.head() == "0007"
        with store.session(write=False) as s:
            assert s.scalars(select(Study.optuna_study_name)).all() == ["kept"]
            assert s.scalars(select(Trial.median_us)).all() == [4.9]
            winner = s.scalars(select(Winner)).one()
            assert (winner.arm, winner.config, winner.speedup) == ("fused", FUSED, 4.14)
            assert s.scalars(select(QueueEntry.state)).all() == ["done"]
            assert s.scalar(select(func.count()).select_from(StepRun)) == 0
        with store.engine.begin() as conn:  # and back down: the new tables go, the rest stays
            command.downgrade(migrate._config(conn), "0002")
        inspector = sqlalchemy.inspect(store.engine)
        assert not inspector.has_table("ks_step_runs") and not inspector.has_table("ks_step_benches")
        with store.session(write=False) as s:
            assert s.scalar(select(func.count()).select_from(Winner)) == 1


@pytest.mark.parametrize(("revision", "new_table"), [("0003", "ks_step_attention"), ("0004", "ks_step_streams"),
                                                         ("0005", "ks_step_folds")])
def test_a_step_check_migration_keeps_the_checks_stored_before_it(new_db_url, revision, new_table):
    """0004 (decode attention's rows) from a 0003 database, 0005 (the fixed-point stream's) from a 0004 one
    and 0006 (the fold's) from a 0005 one: a stored check survives the upgrade to head and the downgrade
    back, which drops the new table."""
    url = new_db_url(f"at{revision}")
    engine = _engine_at(url, revision)
    with Session(engine) as s, s.begin():
        fp = _h100_row(s)
        run = StepRun(fingerprint_id=fp.id, model=MODEL, dtype="bfloat16", table_hash="h", table_json={},
                      context=128, output_len=32)
        s.add(run)
        s.flush()
        s.add(StepBench(run_id=run.id, arm="table", batch=1, step_ms=1.0, tok_s=1000.0))
    engine.dispose()
    with Store(url) as store:  # a writing open migrates to head
        with store.engine.connect() as conn:
            assert migrate.current(conn) == migrate.head() == "0007"
        assert sqlalchemy.inspect(store.engine).has_table(new_table)
        with store.session(write=False) as s:
            assert s.scalars(select(StepBench.step_ms)).all() == [1.0]
        with store.engine.begin() as conn:  # and back down: the new table goes, the rest stays
            command.downgrade(migrate._config(conn), revision)
        assert not sqlalchemy.inspect(store.engine).has_table(new_table)
        with store.session(write=False) as s:
            assert s.scalar(select(func.count()).select_from(StepRun)) == 1
            assert s.scalar(select(func.count()).select_from(StepBench)) == 1


# ---- storing and reading --------------------------------------------------------------------


def test_a_run_round_trips_with_its_tables_and_rows(filled):
    store, _ = filled
    table = build_table(store, MODEL, "H100")
    previous = dataclasses.replace(table, ops={"rmsnorm_qkv": table.ops["rmsnorm_qkv"]})
    measured = rows(unfused={1: 1.7, 16: 2.0}, table={1: 0.94, 16: 2.1}, previous={1: 1.0, 16: 1.9})
    run_id = record_run(store, H100, MODEL, "bfloat16", table, previous, 128, 32, measured)
    run = latest_run(store, fingerprint_key(H100), MODEL, "bfloat16")
    assert run.id == run_id and run.context == 128 and run.output_len == 32
    assert run.table == table and run.previous == previous
    assert (run.table_hash, run.previous_hash) == (table_hash(table), table_hash(previous))
    assert sorted(run.rows, key=lambda r: (r.batch, r.arm)) == sorted(measured, key=lambda r: (r.batch, r.arm))
    assert latest_run(store, fingerprint_key(H200), MODEL, "bfloat16") is None
    assert latest_run(store, fingerprint_key(H100), MODEL, "bfloat16", hash_="0" * 16) is None
    later = record_run(store, H100, MODEL, "bfloat16", table, None, 128, 32, rows(unfused={1: 1.7}, table={1: 0.9}))
    assert latest_run(store, fingerprint_key(H100), MODEL, "bfloat16").id == later


@pytest.mark.parametrize(("row", "has_previous", "match"), [
    (StepRow("eager", 1, 1.0, 1000.0), False, "step arm must be one of"),
    (StepRow("table", 0, 1.0, 1000.0), False, "batch must be an int >= 1"),
    (StepRow("table", 1, float("nan"), 1000.0), False, "step_ms must be a finite number > 0"),
    (StepRow("table", 1, 1.0, 0.0), False, "tok_s must be a finite number > 0"),
    (StepRow("table", 1, 1.0, 1000.0, -1.0), False, "prefill_ms must be a finite number > 0"),
    (StepRow("previous", 1, 1.0, 1000.0), False, "rows of the previous arm need the previous table"),
])
def test_rows_that_are_no_measurement_are_refused(filled, row, has_previous, match):
    store, _ = filled
    table = build_table(store, MODEL, "H100")
    with pytest.raises(ValueError, match=match):
        record_run(store, H100, MODEL, "bfloat16", table, table if has_previous else None, 128, 32, [row])
    with store.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(StepRun)) == 0


def test_the_fixed_stream_rows_round_trip_in_their_own_table(filled):
    store, _ = filled
    table = build_table(store, MODEL, "H100")
    measured = rows(unfused={1: 1.7, 8: 2.0}, table={1: 0.94, 8: 1.5}, fixed_stream={1: 0.9, 8: 1.6})
    run_id = record_run(store, H100, MODEL, "bfloat16", table, None, 128, 32, measured)
    run = latest_run(store, fingerprint_key(H100), MODEL, "bfloat16")
    assert sorted(run.rows, key=lambda r: (r.batch, r.arm)) == sorted(measured, key=lambda r: (r.batch, r.arm))
    with store.session(write=False) as s:
        assert s.scalars(select(StepStream.batch).where(StepStream.run_id == run_id)).all() == [1, 8]
        assert s.scalar(select(func.count()).select_from(StepBench)) == 4
    assert [(v.batch, v.ships, v.stream) for v in run.verdicts] == [(1, "table", "fixed"), (8, "table", "model")]
    with pytest.raises(ValueError, match="a fixed_stream row needs the table arm's row at its batch \\(4\\)"):
        record_run(store, H100, MODEL, "bfloat16", table, None, 128, 32,
                   rows(unfused={4: 1.0}, table={1: 1.0}, fixed_stream={4: 0.9}))
    with pytest.raises(sqlalchemy.exc.IntegrityError), store.session() as s:  # one row a (run, batch)
        s.add(StepStream(run_id=run_id, batch=1, step_ms=1.0, tok_s=1000.0))


def test_the_fold_rows_round_trip_in_their_own_table(filled):
    store, _ = filled
    table = build_table(store, MODEL, "H100")
    measured = rows(unfused={1: 1.7, 8: 2.0}, table={1: 0.94, 8: 1.5}, fixed_stream={1: 0.9, 8: 1.6},
                    fold={1: 0.92}, fold_fixed={1: 0.88})
    run_id = record_run(store, H100, MODEL, "bfloat16", table, None, 128, 32, measured)
    run = latest_run(store, fingerprint_key(H100), MODEL, "bfloat16")
    assert sorted(run.rows, key=lambda r: (r.batch, r.arm)) == sorted(measured, key=lambda r: (r.batch, r.arm))
    with store.session(write=False) as s:
        assert s.scalars(select(StepFold.stream).where(StepFold.run_id == run_id).order_by(StepFold.id)).all() == \
            ["model", "fixed"]
    assert [(v.batch, v.stream, v.fold) for v in run.verdicts] == [(1, "fixed", True), (8, "model", None)]
    with pytest.raises(ValueError, match=r"a fold_fixed row must be at a batch the fold serves \(1,\), got 8"):
        record_run(store, H100, MODEL, "bfloat16", table, None, 128, 32,
                   rows(unfused={8: 1.0}, table={8: 1.0}, fold_fixed={8: 0.9}))
    with pytest.raises(ValueError, match="a fold row needs the table arm's row at its batch \\(1\\)"):
        record_run(store, H100, MODEL, "bfloat16", table, None, 128, 32, rows(unfused={1: 1.0}, fold={1: 0.9}))
    for bad in (StepFold(run_id=run_id, batch=1, stream="model", step_ms=1.0, tok_s=1000.0),  # one a (batch, stream)
                StepFold(run_id=run_id, batch=1, stream="fp32", step_ms=1.0, tok_s=1000.0)):
        with pytest.raises(sqlalchemy.exc.IntegrityError), store.session() as s:
            s.add(bad)


def test_the_database_enforces_the_arms_and_one_row_per_arm_and_batch(filled):
    store, _ = filled
    run_id = record_run(store, H100, MODEL, "bfloat16", build_table(store, MODEL, "H100"), None, 128, 32,
                        rows(unfused={1: 1.7}, table={1: 0.9}))
    for bad in (StepBench(run_id=run_id, arm="eager", batch=2, step_ms=1.0, tok_s=2000.0),
                StepBench(run_id=run_id, arm="table", batch=1, step_ms=1.0, tok_s=1000.0)):
        with pytest.raises(sqlalchemy.exc.IntegrityError), store.session() as s:
            s.add(bad)


# ---- the rule -------------------------------------------------------------------------------


def test_the_fastest_step_ships_and_a_tie_goes_to_the_new_table():
    verdicts = decide(rows(unfused={1: 1.7, 8: 2.0, 32: 3.0, 64: 4.0}, table={1: 0.9, 8: 2.1, 32: 3.0, 64: 4.4},
                           previous={1: 1.0, 8: 2.05, 32: 3.1, 64: 3.9}))
    assert [(v.batch, v.ships) for v in verdicts] == [(1, "table"), (8, "unfused"), (32, "table"), (64, "previous")]
    assert verdicts[0].speedup == pytest.approx(1.7 / 0.9) and verdicts[0].vs_previous == pytest.approx(1.0 / 0.9)
    lone = decide(rows(unfused={4: 1.0}, table={4: 1.2}))
    assert [(v.batch, v.ships, v.vs_previous) for v in lone] == [(4, "unfused", None)]
    assert decide(rows(unfused={4: 1.0}, table={4: 1.0}))[0].ships == "table"


def test_the_table_counts_at_its_faster_stream():
    """The new table's step is the faster of its model-dtype and fixed-point arms: that decides what
    ships and its speedups; its stream is the faster one (a tie: the model dtype)."""
    verdicts = decide(rows(unfused={1: 1.0, 8: 2.0, 32: 3.0, 64: 4.0}, table={1: 1.1, 8: 1.9, 32: 3.0, 64: 4.5},
                           fixed_stream={1: 0.8, 8: 2.2, 32: 3.0, 64: 4.2},
                           previous={1: 0.9, 8: 2.0, 32: 3.0, 64: 3.9}))
    assert [(v.batch, v.ships, v.stream) for v in verdicts] == \
        [(1, "table", "fixed"), (8, "table", "model"), (32, "table", "model"), (64, "previous", "fixed")]
    assert verdicts[0].table_ms == 0.8 and verdicts[0].speedup == pytest.approx(1.0 / 0.8)
    assert verdicts[0].vs_previous == pytest.approx(0.9 / 0.8)
    assert decide(rows(unfused={1: 1.0}, table={1: 1.2}))[0].stream is None  # a check before the stream arm


def test_the_table_counts_at_its_fastest_variant_with_the_fold():
    """At batch 1 the fold arms are variants of the new table too: the fastest of four is its step and
    gives its stream and its fold (a tie goes to no fold); above batch 1 there is no fold verdict."""
    verdicts = decide(rows(unfused={1: 1.0, 8: 2.0}, table={1: 0.9, 8: 1.9}, fixed_stream={1: 0.85, 8: 2.2},
                           fold={1: 0.8}, fold_fixed={1: 0.82}))
    assert [(v.batch, v.ships, v.stream, v.fold, v.table_ms) for v in verdicts] == \
        [(1, "table", "model", True, 0.8), (8, "table", "model", None, 1.9)]
    tie = decide(rows(unfused={1: 1.0}, table={1: 0.9}, fixed_stream={1: 0.85}, fold={1: 0.95}, fold_fixed={1: 0.85}))
    assert (tie[0].stream, tie[0].fold) == ("fixed", False)
    slow = decide(rows(unfused={1: 0.7}, table={1: 0.9}, fixed_stream={1: 0.85}, fold={1: 0.8}, fold_fixed={1: 0.75}))
    assert (slow[0].ships, slow[0].fold, slow[0].stream) == ("unfused", True, "fixed")


def test_the_shipped_table_folds_where_its_check_chose(filled):
    store, _ = filled
    table = build_table(store, MODEL, "H100")
    measured = rows(unfused={1: 1.7, 8: 2.0}, table={1: 1.0, 8: 1.5}, fixed_stream={1: 0.95, 8: 1.6},
                    fold={1: 0.97}, fold_fixed={1: 0.9})
    out, _ = apply_verdicts(table, None, decide(measured))
    assert (out.fold, out.stream) == ((1,), ((1, "fixed"), (8, "model")))
    assert table_hash(out) == table_hash(dataclasses.replace(out, fold=()))  # a check's choice, not a winner's
    unfused = decide(rows(unfused={1: 0.5}, table={1: 1.0}, fixed_stream={1: 0.95}, fold={1: 0.9}))
    assert apply_verdicts(dataclasses.replace(table, fold=(1,)), None, unfused)[0].fold == ()
    previous = dataclasses.replace(table, fold=(1,), stream=((1, "model"),))
    back = decide(rows(unfused={1: 1.7}, table={1: 1.0}, fixed_stream={1: 0.95}, fold={1: 1.1}, previous={1: 0.8}))
    assert apply_verdicts(table, previous, back)[0].fold == (1,)  # the previous table's choice comes back
    record_run(store, H100, MODEL, "bfloat16", table, None, 128, 32, measured)
    shipped = shipped_table(store, MODEL, "H100")
    assert shipped.to_dict()["fold"] == [1]
    assert shipped.to_dict()["step_check"]["batches"][0] == {
        "batch": 1, "ships": "table", "stream": "fixed", "fold": True, "unfused_ms": 1.7, "table_ms": 1.0,
        "fixed_stream_ms": 0.95, "fold_ms": 0.97, "fold_fixed_ms": 0.9}
    assert "decode attention's combine folded into o_proj at batch 1: yes (0.900 ms folded vs 0.950 ms not)" in \
        describe(decide(measured), {})


def test_the_shipped_table_keeps_the_stream_each_batch_ships_with(filled):
    store, _ = filled
    table = build_table(store, MODEL, "H100")
    previous = dataclasses.replace(table, stream=((16, "fixed"),))
    verdicts = decide(rows(unfused={1: 1.7, 16: 2.0, 64: 3.0}, table={1: 1.0, 16: 2.3, 64: 3.5},
                           fixed_stream={1: 0.9, 16: 2.2, 64: 3.4}, previous={1: 1.1, 16: 1.9, 64: 3.6}))
    assert [(v.ships, v.stream) for v in verdicts] == [("table", "fixed"), ("previous", "fixed"), ("unfused", "fixed")]
    out, _ = apply_verdicts(table, previous, verdicts)
    # 1: the table's faster stream; 16: the previous table's choice there; 64: the unfused path's (model).
    assert out.stream == ((1, "fixed"), (16, "fixed"), (64, "model"))
    assert [out.stream_at(b) for b in (1, 2, 16, 17, 64, 65)] == ["fixed", "fixed", "fixed", "model", "model", "model"]
    assert table_hash(out) == table_hash(dataclasses.replace(out, stream=()))  # a check's choice, not a winner's
    record_run(store, H100, MODEL, "bfloat16", table, previous, 128, 32,
               rows(unfused={1: 1.7}, table={1: 1.0}, fixed_stream={1: 1.1}, previous={1: 1.2}))
    shipped = shipped_table(store, MODEL, "H100")
    assert shipped.table.stream == ((1, "model"),)
    assert shipped.to_dict()["stream"] == [{"batch": 1, "stream": "model"}]
    assert shipped.to_dict()["step_check"]["batches"] == [
        {"batch": 1, "ships": "table", "stream": "model", "unfused_ms": 1.7, "table_ms": 1.0, "fixed_stream_ms": 1.1,
         "previous_ms": 1.2}]


def test_a_slower_table_falls_back_at_that_batch_only(filled):
    store, _ = filled
    table = build_table(store, MODEL, "H100")
    out, changed = apply_verdicts(table, None, [Verdict(1, "table", {}), Verdict(16, "unfused", {})])
    assert changed == {16: ["rmsnorm_qkv"]}
    qkv = {b.m: b for b in out.ops["rmsnorm_qkv"].buckets}
    assert (qkv[16].arm, qkv[16].config, qkv[16].speedup) == ("unfused", UNFUSED, 1.0)
    assert qkv[16].median_us == qkv[16].baseline_us == table.ops["rmsnorm_qkv"].buckets[1].baseline_us
    assert qkv[1] == table.ops["rmsnorm_qkv"].buckets[0] and qkv[256] == table.ops["rmsnorm_qkv"].buckets[2]
    assert {op: e for op, e in out.ops.items() if op != "rmsnorm_qkv"} == \
        {op: e for op, e in table.ops.items() if op != "rmsnorm_qkv"}


def test_the_previous_tables_choice_comes_back_where_it_was_faster(filled):
    store, _ = filled
    table = build_table(store, MODEL, "H100")
    qkv = table.ops["rmsnorm_qkv"]
    old = dataclasses.replace(qkv.buckets[0], config={**FUSED, "BLOCK_N": 32}, median_us=5.5)
    previous = dataclasses.replace(table, ops={"rmsnorm_qkv": dataclasses.replace(qkv, buckets=(old,))})
    out, changed = apply_verdicts(table, previous, [Verdict(1, "previous", {})])
    # rmsnorm_qkv gets the previous config back; the ops the previous table lacked run unfused there.
    assert out.ops["rmsnorm_qkv"].buckets[0] == old
    assert sorted(changed[1]) == ["o_proj_residual", "rmsnorm_gate_up_silu", "rmsnorm_qkv"]
    assert out.ops["o_proj_residual"].buckets[0].arm == "unfused"
    assert out.ops["down_residual"] == table.ops["down_residual"]  # unfused already: nothing changes


def test_export_applies_the_check_of_exactly_the_table_it_measured(filled):
    store, info = filled
    table = build_table(store, MODEL, "H100")
    assert shipped_table(store, MODEL, "H100").run is None
    record_run(store, H100, MODEL, "bfloat16", table, None, 128, 32,
               rows(unfused={1: 1.7, 16: 2.0}, table={1: 0.94, 16: 2.1}))
    shipped = shipped_table(store, MODEL, "H100")
    # The same table, built again a moment later: its creation time may have ticked to the next second.
    assert dataclasses.replace(shipped.raw, created=table.created) == table
    assert shipped.replaced == {16: ["rmsnorm_qkv"]}
    assert shipped.table.ops["rmsnorm_qkv"].buckets[1].arm == "unfused"
    record = shipped.to_dict()["step_check"]
    assert record["table_hash"] == table_hash(table) and record["context"] == 128
    assert record["batches"] == [{"batch": 1, "ships": "table", "unfused_ms": 1.7, "table_ms": 0.94},
                                 {"batch": 16, "ships": "unfused", "unfused_ms": 2.0, "table_ms": 2.1}]
    assert record["replaced"] == {"16": ["rmsnorm_qkv"]}
    # A later tune changes a winner: the check no longer speaks for the table, export says nothing of it.
    ref = info.studies[("NVIDIA H100 80GB HBM3", MODEL, "o_proj_residual", 1)]
    store.set_winner(ref.id, arm="unfused", config=UNFUSED, median_us=7.3, unfused_us=7.3, cublas_us=None,
                     floor_us=None, speedup=1.0, speedup_vs_cublas=None)
    later = shipped_table(store, MODEL, "H100")
    assert later.run is None and later.table == later.raw and later.to_dict().get("step_check") is None


# ---- the frame the CLI and the report show --------------------------------------------------


def test_steps_frame_keeps_the_latest_run_of_each_table(filled):
    store, info = filled
    table = build_table(store, MODEL, "H100")
    record_run(store, H100, MODEL, "bfloat16", table, None, 128, 32, rows(unfused={1: 2.0}, table={1: 1.5}))
    newest = record_run(store, H100, MODEL, "bfloat16", table, None, 128, 32,
                        rows(unfused={1: 1.7, 16: 2.0}, table={1: 0.94, 16: 2.1}))
    frame = steps_frame(store)
    assert list(frame.columns) == STEP_COLUMNS and set(frame["run_id"]) == {newest}
    one = frame[frame["batch"] == 1].iloc[0]
    assert (one["gpu"], one["model"], one["ships"], bool(one["current"])) == ("NVIDIA H100 80GB HBM3", MODEL,
                                                                              "table", True)
    assert one["unfused_tok_s"] == pytest.approx(1000 / 1.7) and one["speedup"] == pytest.approx(1.7 / 0.94)
    assert pd.isna(one["previous_tok_s"])
    assert len(steps_frame(store, latest=False)) == 3
    assert list(steps_frame(store, batch_min=2)["batch"]) == [16]
    assert steps_frame(store, gpu="H200").empty and steps_frame(store, model="qwen3-8b").empty
    ref = info.studies[("NVIDIA H100 80GB HBM3", MODEL, "o_proj_residual", 1)]
    store.set_winner(ref.id, arm="unfused", config=UNFUSED, median_us=7.3, unfused_us=7.3, cublas_us=None,
                     floor_us=None, speedup=1.0, speedup_vs_cublas=None)
    assert not steps_frame(store)["current"].any()


def test_a_run_goes_with_its_fingerprint(filled):
    store, _ = filled
    record_run(store, H200, MODEL, "bfloat16", build_table(store, MODEL, "H200"), None, 128, 32,
               rows(unfused={1: 1.0}, table={1: 0.5}))
    with store.session() as s:
        s.delete(s.scalars(select(Fingerprint).where(Fingerprint.key == fingerprint_key(H200))).one())
    with store.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(StepRun)) == 0
        assert s.scalar(select(func.count()).select_from(StepBench)) == 0


def test_the_same_choices_give_the_same_hash(filled):
    store, _ = filled
    table = build_table(store, MODEL, "H100")
    again = dataclasses.replace(table, created="2000-01-01T00:00:00Z")
    assert table_hash(again) == table_hash(table)
    retimed = dataclasses.replace(table, ops={**table.ops, "rmsnorm_qkv": dataclasses.replace(
        table.ops["rmsnorm_qkv"], buckets=tuple(dataclasses.replace(b, median_us=b.median_us * 2)
                                                for b in table.ops["rmsnorm_qkv"].buckets))})
    assert table_hash(retimed) == table_hash(table)
    other = dataclasses.replace(table, ops={op: e for op, e in table.ops.items() if op != "lm_head" and
                                            op != "o_proj_residual"})
    assert table_hash(other) != table_hash(table)
