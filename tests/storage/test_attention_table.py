"""Decode attention in the dispatch table (format 2): its entries spell out their keys and must agree
with them, import refuses a config its check refuses (one line naming the field), the round trip through the
database keeps them, and tables without attention load, dump and import exactly as before."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from kernel_space import kernel_hash
from kernel_space.attention_shape import encode_m
from kernel_space.decode_attention import attention_plan
from kernel_space.registry import ALL_OPS
from storage import Store, TableError, dump_table, load_table
from storage.export import build_table, check_runnable, import_table
from storage.queries import studies_frame, winners_frame
from tests.storage.fill import FUSED, H100

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
COMMITTED = sorted(RESULTS.glob("dispatch_qwen3-*_H100.json"))  # the shipped tables: no attention rows
WITH_ATTENTION = sorted(RESULTS.glob("dispatch_attn_*.json")) + sorted(RESULTS.glob("dispatch_*_merged.json"))
PLAN = attention_plan(8, 16, 8, 128, 4096, 132)  # a runnable qwen3-0.6b config


def bucket(batch, context, arm="fused", config=None) -> dict:
    return {"m": encode_m(batch, context), "batch": batch, "context": context, "arm": arm,
            "config": dict(config or (PLAN if arm == "fused" else {"impl": "unfused"})),
            "median_us": 10.0, "baseline_us": 12.0, "speedup": 1.2, "floor_us": 8.0}


def table(buckets=None) -> dict:
    """A qwen3-0.6b table of one linear op and decode attention at (1, 4096), (8, 4096), (1, 32768)."""
    return {
        "format": 2, "created": "2026-11-26T00:00:00Z", "model": "qwen3-0.6b", "dtype": "bfloat16",
        "fingerprint": H100,
        "ops": {
            "o_proj_residual": {"N": 1024, "K": 2048, "kernel_hash": "h", "buckets": [
                {"m": 1, "arm": "unfused", "config": {"impl": "unfused"}, "median_us": 5.0, "baseline_us": 5.0,
                 "speedup": 1.0}]},
            "decode_attention": {"N": 16008, "K": 128, "heads": 16, "kv_heads": 8, "head_dim": 128,
                                 "kernel_hash": kernel_hash("decode_attention"),
                                 "buckets": buckets or [bucket(1, 4096), bucket(8, 4096, "unfused"),
                                                        bucket(1, 32768)]},
        },
    }


def test_attention_entries_load_dump_and_look_up_by_interval():
    data = table()
    loaded = load_table(data)
    entry = loaded.ops["decode_attention"]
    assert [b.m for b in entry.buckets] == [4096001, 4096008, 32768001]
    assert json.loads(dump_table(loaded)) == data  # the keys spelled out again, nothing else added
    assert entry.attention_lookup(2, 1000)[0].m == 4096008
    assert entry.attention_lookup(1, 5000)[0].m == 32768001
    assert entry.attention_lookup(2, 5000) == (None, "batch 2 is past the last batch tuned at context 32768 (1)")
    check_runnable(loaded)


def _edit(change):
    data = copy.deepcopy(table())
    change(data["ops"]["decode_attention"])
    return data


def test_attention_needs_format_2_and_a_table_without_it_stays_format_1():
    with pytest.raises(TableError, match="a table with decode_attention is format 2 \\(format 1 predates it\\)"):
        load_table({**table(), "format": 1})
    without = load_table(table()).to_dict()
    del without["ops"]["decode_attention"]
    assert load_table(without).to_dict()["format"] == 1
    with pytest.raises(TableError, match="unsupported format 3; this version reads formats 1, 2"):
        load_table({**table(), "format": 3})


@pytest.mark.parametrize("change, field, words", [
    (lambda e: e["buckets"][0].update(m=8), "ops.decode_attention.buckets[0].m",
     "M key 8 is not context * 1000 + batch"),
    (lambda e: e["buckets"][0].update(batch=2), "ops.decode_attention.buckets[0].batch", "is 2, but m=4096001 says 1"),
    (lambda e: e["buckets"][2].pop("context"), "ops.decode_attention.buckets[2].context", "missing"),
    (lambda e: e.update(N=16003), "ops.decode_attention.N", "reads as 16 heads over 3 KV heads"),
    (lambda e: e.update(kv_heads=4), "ops.decode_attention.kv_heads", "is 4, but N=16008, K=128 says 8"),
    (lambda e: e.pop("head_dim"), "ops.decode_attention.head_dim", "missing"),
    (lambda e: e["buckets"][0]["config"].pop("SPLITS"), "ops.decode_attention.buckets[0].config.SPLITS", "missing"),
    (lambda e: e["buckets"][0]["config"].update(pack=3), "ops.decode_attention.buckets[0].config.pack",
     "expected str"),
    (lambda e: e["buckets"][0]["config"].update(prep=1), "ops.decode_attention.buckets[0].config.prep",
     "expected str"),
])
def test_a_malformed_attention_entry_names_its_field(change, field, words):
    with pytest.raises(TableError) as err:
        load_table(_edit(change))
    assert err.value.field == field and words in str(err.value)
    assert "\n" not in str(err.value)


def test_prep_is_optional_and_kept():
    """A config without prep (tables before it was a key) loads and is runnable; prep=fused round-trips."""
    without = {k: v for k, v in PLAN.items() if k != "prep"}
    data = _edit(lambda e: e["buckets"][0].update(config=without) or e["buckets"][2].update(
        config={**PLAN, "prep": "fused"}))
    loaded = load_table(data)
    check_runnable(loaded)
    assert json.loads(dump_table(loaded)) == data
    assert [b.config.get("prep") for b in loaded.ops["decode_attention"].buckets] == [None, None, "fused"]


@pytest.mark.parametrize("config, words", [
    ({**PLAN, "BLOCK_N": 48}, "BLOCK_N=48 is not in the search space"),
    ({**PLAN, "prep": "inline"}, "prep='inline' is not in the search space"),
    ({**PLAN, "num_warps": 1, "BLOCK_N": 256, "pack": "head"}, "would spill"),
    ({**PLAN, "BLOCK_M": 16}, "not a parameter of the search space"),
])
def test_import_refuses_a_config_the_check_refuses(tmp_path, config, words):
    data = _edit(lambda e: e["buckets"][1].update(arm="fused", config=config))
    loaded = load_table(data)  # the format holds; the config cannot run
    with pytest.raises(TableError) as err:
        check_runnable(loaded)
    assert err.value.field.startswith("ops.decode_attention.buckets[1].config") and words in str(err.value)
    with Store(f"sqlite:///{tmp_path / 'ks.db'}") as store, pytest.raises(TableError):
        import_table(store, data)
        assert winners_frame(store).empty  # nothing of a refused table is stored


def test_import_and_export_keep_attention_as_its_keys(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'ks.db'}") as store:
        summary = import_table(store, table())
        assert (summary.ops, summary.buckets, summary.added) == (2, 4, 4)
        frame = winners_frame(store, op="decode_attention")
        assert sorted(zip(frame["m"], frame["context"], strict=True)) == [(1, 4096), (1, 32768), (8, 4096)]
        assert list(studies_frame(store, op="decode_attention", m_min=2)["m"]) == [8]  # M is the batch
        again = build_table(store, "qwen3-0.6b")
    # Everything but the kernel hashes, which an export takes from the fingerprint (this one's is a fixture's).
    got, sent = again.to_dict()["ops"], table()["ops"]
    for ops in (got, sent):
        for entry in ops.values():
            entry.pop("kernel_hash")
    assert got == sent


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_committed_tables_round_trip(path, tmp_path):
    """The H100 tables load, validate and dump to the same bytes; importing and exporting them gives the
    same ops, less decode attention's plan buckets (a step check's verdict, which import skips)."""
    loaded = load_table(path)
    assert dump_table(loaded) == path.read_text()
    check_runnable(loaded)
    with Store(f"sqlite:///{tmp_path / 'ks.db'}") as store:
        import_table(store, path)
        again = build_table(store, loaded.model)
    want = loaded.to_dict()["ops"]
    if "decode_attention" in want:
        buckets = want["decode_attention"]["buckets"]
        assert {b["arm"] for b in buckets} <= {"fused", "unfused", "plan"}
        want["decode_attention"]["buckets"] = [b for b in buckets if b["arm"] != "plan"]
        if not want["decode_attention"]["buckets"]:  # the plan won at every bucket: no winner to import
            del want["decode_attention"]
    assert again.to_dict()["ops"] == want


def test_import_command_refuses_a_bad_attention_config_in_one_line(tmp_path):
    from tests.cli.helpers import assert_one_line_error, run

    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_edit(lambda e: e["buckets"][0].update(config={**PLAN, "num_stages": 9}))))
    assert_one_line_error(run("import", path, "--db", f"sqlite:///{tmp_path / 'ks.db'}"),
                          "ops.decode_attention.buckets[0].config", "cannot run at batch 1, context 4096 "
                          "(16 heads over 8 KV heads of 128)", "num_stages=9 is not in the search space")
    assert not (tmp_path / "ks.db").exists()  # a refused table creates no database


def test_the_step_check_keeps_attention_buckets_as_tuned():
    """A verdict for the unfused step at batch 1 replaces the linear op's M = 1 bucket, not decode
    attention's batch-1 buckets (what the other arms ran for it is its default plan)."""
    from storage.steps import Verdict, apply_verdicts

    loaded = load_table({**table(), "ops": {**table()["ops"], "o_proj_residual": {
        "N": 1024, "K": 2048, "kernel_hash": "h", "buckets": [
            {"m": 1, "arm": "fused", "config": FUSED, "median_us": 4.0, "baseline_us": 5.0, "speedup": 1.25}]}}})
    shipped, changed = apply_verdicts(loaded, None, [Verdict(1, "unfused", {"unfused": 1.0, "table": 1.1})])
    assert changed == {1: ["o_proj_residual"]}
    assert shipped.ops["o_proj_residual"].buckets[0].arm == "unfused"
    assert shipped.ops["decode_attention"] == loaded.ops["decode_attention"]


def test_an_attention_bucket_may_run_the_default_plan_and_import_skips_it(tmp_path):
    data = table([bucket(1, 4096), {**bucket(8, 4096), "arm": "plan", "config": {}}])
    loaded = load_table(data)
    assert [b.arm for b in loaded.ops["decode_attention"].buckets] == ["fused", "plan"]
    assert json.loads(dump_table(loaded)) == data
    check_runnable(loaded)
    with Store(f"sqlite:///{tmp_path / 'p.db'}") as store:
        summary = import_table(store, loaded)
        assert (summary.plans, summary.buckets, summary.added) == (1, 2, 2)  # o_proj and the fused attention bucket
        assert "1 decode attention bucket on the default plan not imported" in str(summary)


def test_only_decode_attention_has_the_plan_arm():
    data = table()
    data["ops"]["o_proj_residual"]["buckets"][0]["arm"] = "plan"
    with pytest.raises(TableError, match=r"'ops\.o_proj_residual\.buckets\[0\]\.arm': must be one of \('fused', "
                                         r"'unfused'\), got 'plan'"):
        load_table(data)


@pytest.mark.parametrize("path", WITH_ATTENTION, ids=lambda p: p.name)
def test_tables_tuned_with_attention_on_a_gpu_load_and_validate(path):
    """The H100 tune's decode attention tables, alone and merged into the GEMM tables: every bucket a
    config the check accepts at its (batch, context), the dump byte-for-byte the file."""
    loaded = load_table(path)
    assert loaded.ops["decode_attention"].buckets
    assert dump_table(loaded) == path.read_text()
    check_runnable(loaded)


def test_the_committed_tables_run_on_this_code():
    """Every op of a committed table carries this code's kernel hash: a change to an op's kernels or its
    launcher module (kernel_space.registry.kernel_hash) must come with a re-tune, or a restamp after a
    PTX check (benchmarks/compile_survey.py, attention_ptx_identity.py), or the dispatcher would run
    the baseline for that op with a warning. The tables were hashed by GPU processes; this test session
    runs under Triton's interpreter, whose kernels hash the same (test_spec.py)."""
    root = Path(__file__).resolve().parents[2]
    here = {op: kernel_hash(op) for op in ALL_OPS}
    for model in ("0.6b", "1.7b", "8b"):
        ops = json.loads((root / f"benchmarks/results/dispatch_qwen3-{model}_H100.json").read_text())["ops"]
        assert {op: entry["kernel_hash"] for op, entry in ops.items()} == {op: here[op] for op in ops}, model


def test_table_variant_changes_one_bucket_and_refuses_what_the_check_refuses(tmp_path):
    """benchmarks/table_variant.py: the committed 0.6B table with down_residual's M = 1 config at SPLIT_K
    6 (one K block a split at K = 3072) loads and stays runnable, every other bucket as it was; a config
    the op's check refuses (empty splits) writes nothing and says why."""
    from benchmarks.table_variant import main

    root = Path(__file__).resolve().parents[2]
    src = root / "benchmarks/results/dispatch_qwen3-0.6b_H100.json"
    out = tmp_path / "variant.json"
    assert main([str(src), str(out), "--op", "down_residual", "--m", "1", "--set", "BLOCK_K=512,SPLIT_K=6"]) == 0
    before, after = json.loads(src.read_text()), json.loads(out.read_text())
    changed = next(b for b in after["ops"]["down_residual"]["buckets"] if b["m"] == 1)
    assert (changed["config"]["BLOCK_K"], changed["config"]["SPLIT_K"]) == (512, 6)
    changed["config"] = next(b for b in before["ops"]["down_residual"]["buckets"] if b["m"] == 1)["config"]
    assert after == before
    check_runnable(load_table(out))
    with pytest.raises(SystemExit, match="leaves empty splits"):
        main([str(src), str(tmp_path / "bad.json"), "--op", "down_residual", "--m", "1", "--set", "SPLIT_K=16"])
    assert not (tmp_path / "bad.json").exists()
