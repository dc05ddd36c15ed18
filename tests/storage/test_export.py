"""Dispatch tables out of the database and back in: build_table, import_table, the validator."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from kernel_space.spec import Problem
from storage import DispatchTable, StorageError, Store, TableError, Winner, dump_table, load_table
from storage.export import build_table, import_table
from storage.queries import winners_frame
from storage.store import fingerprint_key
from storage.table import merge_tables
from tests.storage.fill import FMA, FUSED, H100, H200, shape


def test_build_table_for_a_model_on_one_gpu(filled):
    store, _ = filled
    table = build_table(store, "qwen3-0.6b", fingerprint_key="H100")
    assert isinstance(table, DispatchTable)
    assert (table.model, table.dtype, table.fingerprint) == ("qwen3-0.6b", "bfloat16", H100)
    assert fingerprint_key(table.fingerprint) == fingerprint_key(H100)
    # Layer order (the order the ops were first linked), and each op's shape and hash.
    assert list(table.ops) == ["rmsnorm_qkv", "o_proj_residual", "rmsnorm_gate_up_silu", "down_residual"]
    for op, entry in table.ops.items():
        assert (entry.n, entry.k) == shape("qwen3-0.6b", op)
        assert entry.kernel_hash == H100["kernel_hashes"][op]
    qkv = table.ops["rmsnorm_qkv"]
    assert [b.m for b in qkv.buckets] == [1, 16, 256]
    assert [(b.arm, b.median_us, b.baseline_us) for b in qkv.buckets] == [
        ("fused", 4.9, 20.3), ("fused", 5.2, 20.9), ("unfused", 24.0, 24.0)]
    assert qkv.buckets[0].config == FUSED and qkv.buckets[2].config == {"impl": "unfused"}
    assert qkv.lookup(100).m == 256 and qkv.lookup(4000).m == 256
    # The study without a winner yet is left out, not guessed.
    assert [b.m for b in table.ops["down_residual"].buckets] == [1]


def test_build_table_picks_the_only_fingerprint(filled):
    store, _ = filled
    table = build_table(store, "qwen3-8b")
    assert table.fingerprint["device_name"] == "NVIDIA H100 80GB HBM3"
    assert table.ops["down_residual"].buckets[0].config == FMA


def test_build_table_with_two_fingerprints_lists_them(filled):
    store, info = filled
    with pytest.raises(StorageError) as err:
        build_table(store, "qwen3-0.6b")
    message = str(err.value)
    assert "2 fingerprints" in message and "NVIDIA H200" in message and "NVIDIA H100 80GB HBM3" in message
    key = info.studies[("NVIDIA H200", "qwen3-0.6b", "rmsnorm_qkv", 1)].fingerprint_key
    assert key in message
    assert build_table(store, "qwen3-0.6b", fingerprint_key=key).fingerprint == H200
    assert build_table(store, "qwen3-0.6b", fingerprint_key=key[:5]).fingerprint == H200


@pytest.mark.parametrize(("model", "kwargs", "words"), [
    ("qwen3-4b", {}, "no winners for model 'qwen3-4b'; models with winners: qwen3-0.6b (bfloat16)"),
    ("qwen3-8b", {"dtype": "float16"}, "has winners in bfloat16, none in float16"),
    ("qwen3-8b", {"fingerprint_key": "A100"}, "on a fingerprint matching 'A100'"),
])
def test_build_table_without_rows_says_why(filled, model, kwargs, words):
    store, _ = filled
    with pytest.raises(StorageError, match=words.replace("(", r"\(").replace(")", r"\)")):
        build_table(store, model, **kwargs)


def test_build_table_on_an_empty_database(store):
    with pytest.raises(StorageError, match="no winners yet"):
        build_table(store, "qwen3-0.6b")


def test_export_import_round_trip(filled, tmp_path, new_db_url):
    store, _ = filled
    table = build_table(store, "qwen3-0.6b", fingerprint_key="H100")
    path = tmp_path / "h100.json"
    dump_table(table, path)
    assert load_table(path) == table  # the file passes the validator unchanged
    with Store(new_db_url("other")) as other:
        summary = import_table(other, path)
        assert (summary.model, summary.ops, summary.buckets, summary.added) == ("qwen3-0.6b", 4, 6, 6)
        assert summary.fingerprint_key == fingerprint_key(H100)
        again = build_table(other, "qwen3-0.6b")
        assert again.ops == table.ops and again.fingerprint == table.fingerprint
        # The imported rows answer queries like local ones, cuBLAS and floor times included.
        frame = winners_frame(other, gpu="H100", op="rmsnorm_qkv")
        assert frame.m.tolist() == [1, 16, 256]
        assert frame.cublas_us.tolist() == [6.0, 6.1, 14.0] and frame.floor_us.tolist() == [2.8, 2.9, 6.0]
        assert frame.speedup_vs_cublas.tolist() == pytest.approx([6.0 / 4.9, 6.1 / 5.2, 14.0 / 24.0])
        assert frame.speedup.tolist() == [b.speedup for b in table.ops["rmsnorm_qkv"].buckets]


def test_reimport_keeps_local_measurements_and_replaces_changes(filled, tmp_path):
    store, _ = filled
    data = build_table(store, "qwen3-8b").to_dict()
    summary = import_table(store, data)
    assert (summary.added, summary.replaced, summary.unchanged) == (0, 0, 2)
    assert winners_frame(store, model="qwen3-8b").cublas_us.notna().all()  # not wiped by the table's gaps
    data["ops"]["rmsnorm_qkv"]["buckets"][0].update(median_us=18.0, speedup=2.57)
    data["ops"]["rmsnorm_qkv"]["buckets"].append({"m": 64, "arm": "unfused", "config": {"impl": "unfused"},
                                                  "median_us": 50.0, "baseline_us": 50.0, "speedup": 1.0})
    summary = import_table(store, data)
    assert (summary.added, summary.replaced, summary.unchanged) == (1, 1, 1)
    frame = winners_frame(store, model="qwen3-8b", op="rmsnorm_qkv")
    assert frame.median_us.tolist() == [18.0, 50.0]
    assert frame.cublas_us.tolist()[0] == 24.7 and frame.cublas_us.isna().tolist() == [False, True]


def test_a_table_without_cublas_times_keeps_the_local_ones(filled):
    """Format-1 tables written before cublas_us/floor_us existed still load and import."""
    store, _ = filled
    data = build_table(store, "qwen3-8b").to_dict()
    for entry in data["ops"].values():
        for bucket in entry["buckets"]:
            del bucket["cublas_us"], bucket["floor_us"]
    assert load_table(data).ops["rmsnorm_qkv"].buckets[0].speedup_vs_cublas is None
    summary = import_table(store, data)
    assert (summary.added, summary.replaced, summary.unchanged) == (0, 0, 2)
    assert winners_frame(store, model="qwen3-8b").cublas_us.notna().all()


def _table(store) -> dict:
    return build_table(store, "qwen3-8b").to_dict()


@pytest.mark.parametrize(("edit", "field"), [
    (lambda d: d["fingerprint"].pop("sm_count"), "fingerprint.sm_count"),
    (lambda d: d["fingerprint"].update(capability=[9]), "fingerprint.capability"),
    (lambda d: d["fingerprint"].update(capability=["9", "0"]), "fingerprint.capability"),
    (lambda d: d.update(format=3), "format"),  # 1 and 2 (decode attention) exist
    (lambda d: d.update(dtype="int4"), "dtype"),
    (lambda d: d["ops"]["rmsnorm_qkv"].update(N=0), "ops.rmsnorm_qkv.N"),
    (lambda d: d["ops"]["rmsnorm_qkv"]["buckets"][0].update(arm="cublas"), "ops.rmsnorm_qkv.buckets[0].arm"),
    (lambda d: d["ops"]["rmsnorm_qkv"]["buckets"][0]["config"].pop("BLOCK_K"),
     "ops.rmsnorm_qkv.buckets[0].config.BLOCK_K"),
    (lambda d: d["ops"]["down_residual"]["buckets"][0].pop("median_us"), "ops.down_residual.buckets[0].median_us"),
    # Issue 14 item 3: every number finite, positive and in range; ops and configs this version can run.
    (lambda d: d["ops"]["down_residual"]["buckets"][0].update(median_us=float("inf")),
     "ops.down_residual.buckets[0].median_us"),
    (lambda d: d["ops"]["down_residual"]["buckets"][0].update(median_us=float("nan")),
     "ops.down_residual.buckets[0].median_us"),
    (lambda d: d["ops"]["down_residual"]["buckets"][0].update(baseline_us=-3.0),
     "ops.down_residual.buckets[0].baseline_us"),
    (lambda d: d["ops"]["down_residual"]["buckets"][0].update(speedup=0), "ops.down_residual.buckets[0].speedup"),
    (lambda d: d["ops"]["down_residual"]["buckets"][0].update(cublas_us=-1.0),
     "ops.down_residual.buckets[0].cublas_us"),
    (lambda d: d["ops"]["down_residual"]["buckets"][0].update(m=10**40), "ops.down_residual.buckets[0].m"),
    (lambda d: d["ops"]["down_residual"].update(K=2**31), "ops.down_residual.K"),
    (lambda d: d["fingerprint"].update(sm_count=-1), "fingerprint.sm_count"),
    (lambda d: d["fingerprint"].update(total_memory=10**30), "fingerprint.total_memory"),
    (lambda d: d["fingerprint"].update(device_name="x" * 1000), "fingerprint.device_name"),
    (lambda d: d.update(model=""), "model"),
    (lambda d: d.update(model="qwen3\n\x1b[31mred"), "model"),
    (lambda d: d.update(ops={}), "ops"),
    (lambda d: d["ops"].update(nope=d["ops"]["down_residual"]), "ops.nope"),
    (lambda d: d["ops"]["down_residual"]["buckets"][0]["config"].update(BLOCK_K=48),
     "ops.down_residual.buckets[0].config"),
    (lambda d: d["ops"]["down_residual"]["buckets"][0]["config"].update(BLOCK_M=128),
     "ops.down_residual.buckets[0].config"),
    (lambda d: d["ops"]["down_residual"]["buckets"][0]["config"].update(evil={"a": 1}),
     "ops.down_residual.buckets[0].config.evil"),
    (lambda d: d["ops"]["down_residual"]["buckets"][0].update(arm="unfused"), "ops.down_residual.buckets[0].config"),
    (lambda d: d.update(stream={"1": "fixed"}), "stream"),
    (lambda d: d.update(stream=[{"batch": 1, "stream": "fp32"}]), "stream[0].stream"),
    (lambda d: d.update(stream=[{"batch": 0, "stream": "fixed"}]), "stream[0].batch"),
    (lambda d: d.update(stream=[{"stream": "fixed"}]), "stream[0].batch"),
    (lambda d: d.update(stream=[{"batch": 8, "stream": "fixed"}, {"batch": 8, "stream": "model"}]), "stream[1].batch"),
    (lambda d: d.update(stream=[{"batch": 1, "stream": "fixed"}, "model"]), "stream[1]"),
    (lambda d: d.update(fold=1), "fold"),
    (lambda d: d.update(fold=[8]), "fold[0]"),
    (lambda d: d.update(fold=[True]), "fold[0]"),
    (lambda d: d.update(fold=[1, 1]), "fold[1]"),
])
def test_malformed_tables_are_refused_naming_the_field(filled, edit, field):
    store, _ = filled
    data = _table(store)
    edit(data)
    with pytest.raises(TableError) as err:
        import_table(store, data)
    assert err.value.field == field and field in str(err.value)


def test_a_refused_table_writes_nothing(store, new_db_url):
    with Store(new_db_url("src")) as src:
        ref = src.study(H100, Problem("rmsnorm_qkv", 1, 6144, 4096, "bfloat16"), model="qwen3-8b")
        src.set_winner(ref.id, arm="fused", config=FUSED, median_us=19.0, unfused_us=46.2, cublas_us=24.7,
                       floor_us=16.8, speedup=2.43, speedup_vs_cublas=1.3)
        ref = src.study(H100, Problem("o_proj_residual", 1, 4096, 4096, "bfloat16"), model="qwen3-8b")
        src.set_winner(ref.id, arm="unfused", config={"impl": "unfused"}, median_us=18.7, unfused_us=18.7,
                       cublas_us=16.8, floor_us=11.2, speedup=1.0, speedup_vs_cublas=0.9)
        data = build_table(src, "qwen3-8b").to_dict()
    store.study(H100, Problem("o_proj_residual", 1, 1, 1, "bfloat16"), model="qwen3-8b")  # conflicting shape
    with pytest.raises(StorageError, match="already has o_proj_residual"):
        import_table(store, data)
    with store.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Winner)) == 0


def test_import_from_a_file_errors(store, tmp_path):
    with pytest.raises(TableError, match="cannot read"):
        import_table(store, tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TableError, match="is not JSON"):
        import_table(store, bad)
    bad.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(TableError, match="nests deeper"):
        import_table(store, bad)
    bad.write_text('{"format": 1, "x": ' + "9" * 5000 + "}")
    with pytest.raises(TableError, match="not a valid table"):
        import_table(store, bad)
    bad.write_text('{"format": 1, "x": Infinity}')
    with pytest.raises(TableError, match="Infinity is not a number"):
        import_table(store, bad)
    bad.write_bytes(b"\xff\xfe{}")
    with pytest.raises(TableError, match="not UTF-8"):
        import_table(store, bad)
    with pytest.raises(TableError, match="a folder"):
        import_table(store, tmp_path)


def test_the_stream_choice_round_trips_and_falls_back_to_the_rule(filled):
    """A table's "stream" (the step check's choice per batch) loads, dumps and merges; a table without
    it runs default_stream's rule (fixed point at batch 1) and dumps without the key."""
    store, _ = filled
    data = _table(store)
    plain = load_table(data)
    assert plain.stream == () and "stream" not in plain.to_dict()
    assert [plain.stream_at(b) for b in (1, 2, 8)] == ["fixed", "model", "model"]
    data["stream"] = [{"batch": 1, "stream": "model"}, {"batch": 8, "stream": "fixed"}]
    table = load_table(data)
    assert table.stream == ((1, "model"), (8, "fixed"))
    assert [table.stream_at(b) for b in (1, 2, 8, 9, 64)] == ["model", "fixed", "fixed", "model", "model"]
    assert load_table(json.loads(dump_table(table))) == table
    merged = merge_tables([table, plain], "2026-11-29T00:00:00Z")  # the last table that has a choice
    assert merged.stream == table.stream
    summary = str(import_table(store, table))  # a verdict, not a winner: said, not stored
    assert summary.endswith("; its residual stream choice at 2 batches not imported (a step check's verdict: "
                            "a tune's check chooses again)")
    assert "stream" not in str(import_table(store, plain))


def test_the_fold_choice_round_trips_and_is_off_without_it(filled):
    """A table's "fold" (the batches its step check folded the attention's combine into o_proj at)
    loads, dumps and merges with the step check's other choice; without it nothing folds."""
    store, _ = filled
    data = _table(store)
    plain = load_table(data)
    assert plain.fold == () and not plain.folds_at(1) and "fold" not in plain.to_dict()
    data["fold"] = [1]
    table = load_table(data)
    assert table.fold == (1,) and table.folds_at(1) and not table.folds_at(2)
    assert load_table(json.loads(dump_table(table))) == table
    assert merge_tables([table, plain], "2026-11-29T00:00:00Z").fold == (1,)
    decided = replace(plain, stream=((1, "model"),))  # a later step check that did not fold
    assert merge_tables([table, decided], "2026-11-29T00:00:00Z").fold == ()
    assert str(import_table(store, table)).endswith("; its fold of the attention's combine into o_proj at 1 batch "
                                                    "not imported (a step check's verdict too)")
