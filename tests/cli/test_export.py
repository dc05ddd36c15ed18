"""`kernel-search export` and `import`."""

from __future__ import annotations

import json

import pytest

from cli.common import resolve_model_name
from storage import StorageError, load_table
from storage.queries import winners_frame
from tests.cli.helpers import assert_one_line_error, run
from tests.storage.fill import H100, H200


def test_export_to_stdout_is_a_valid_table(filled):
    store, _ = filled
    result = run("export", "--model", "qwen3-8b", "--db", store.url)
    assert result.exit_code == 0, result.output
    table = load_table(json.loads(result.stdout))
    assert table.model == "qwen3-8b" and table.fingerprint == H100
    assert set(table.ops) == {"rmsnorm_qkv", "down_residual"}
    assert result.stderr.startswith("wrote stdout: qwen3-8b (bfloat16) on NVIDIA H100 80GB HBM3, 2 ops, 2 buckets")


def test_export_to_a_file_with_gpu_choice(filled, tmp_path):
    store, _ = filled
    out = tmp_path / "h200.json"
    result = run("export", "--model", "qwen3-0.6b", "--gpu", "H200", "-o", out, "--db", store.url)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert load_table(out).fingerprint == H200
    assert f"wrote {out}" in result.stderr


def test_export_reads_the_url_from_the_environment(filled):
    store, _ = filled
    result = run("export", "--model", "qwen3-8b", env={"KERNEL_SEARCH_DB": store.url})
    assert result.exit_code == 0, result.output


def test_export_errors_are_one_line(filled, tmp_path):
    store, _ = filled
    assert_one_line_error(run("export", "--model", "qwen3-0.6b", "--db", store.url),
                          "2 fingerprints", "--gpu", "NVIDIA H200")
    assert_one_line_error(run("export", "--model", "llama-7b", "--db", store.url),
                          "unknown model 'llama-7b'", "qwen3-0.6b", "qwen3-8b")
    assert_one_line_error(run("export", "--model", "qwen3-4b", "--db", store.url), "no winners for model 'qwen3-4b'")
    assert_one_line_error(run("export", "--model", "qwen3-8b", "--dtype", "int8", "--db", store.url), "dtype")
    assert_one_line_error(run("export", "--model", "qwen3-8b", "--db", "nosuch://x"), "unknown database kind")
    assert_one_line_error(run("export", "--model", "qwen3-8b", "--db", f"sqlite:///{tmp_path / 'none.db'}"),
                          "no database at")
    assert not (tmp_path / "none.db").exists()
    assert_one_line_error(run("export", "--model", "qwen3-8b", "-o", tmp_path / "no" / "dir.json",
                              "--db", store.url), "No such file or directory")


def test_import_prints_a_summary_and_stores_the_rows(filled, tmp_path):
    store, _ = filled
    out = tmp_path / "t.json"
    assert run("export", "--model", "qwen3-8b", "-o", out, "--db", store.url).exit_code == 0
    target = f"sqlite:///{tmp_path / 'new.db'}"
    result = run("import", out, "--db", target)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("imported qwen3-8b (bfloat16) for NVIDIA H100 80GB HBM3 [")
    assert "2 ops, 2 buckets; winners 2 added, 0 replaced, 0 unchanged" in result.stdout
    from storage import Store

    with Store(target) as other:
        assert len(winners_frame(other, model="qwen3-8b")) == 2
    assert "0 added, 0 replaced, 2 unchanged" in run("import", out, "--db", target).stdout


def test_import_errors_are_one_line(filled, tmp_path):
    store, _ = filled
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert_one_line_error(run("import", tmp_path / "missing.json", "--db", url), "no such file", "missing.json")
    bad = tmp_path / "bad.json"
    data = json.loads(run("export", "--model", "qwen3-8b", "--db", store.url).stdout)
    data["ops"]["rmsnorm_qkv"]["buckets"][0]["arm"] = "cublas"
    bad.write_text(json.dumps(data))
    assert_one_line_error(run("import", bad, "--db", url), "ops.rmsnorm_qkv.buckets[0].arm")
    del data["fingerprint"]
    bad.write_text(json.dumps(data))
    assert_one_line_error(run("import", bad, "--db", url), "'fingerprint'", "missing")
    bad.write_text("[1, 2")
    assert_one_line_error(run("import", bad, "--db", url), "is not JSON")
    good = tmp_path / "good.json"
    good.write_text(run("export", "--model", "qwen3-8b", "--db", store.url).stdout)
    assert_one_line_error(run("import", good, "--db", "sqlite:////nonexistent-dir/x.db"), "no folder /nonexistent-dir")


def test_resolve_model_name(filled, tmp_path):
    store, _ = filled
    assert resolve_model_name(store, "qwen3-0.6b-ft") == "qwen3-0.6b-ft"
    assert resolve_model_name(store, "qwen3-4b") == "qwen3-4b"  # a preset, even without rows
    folder = tmp_path / "Qwen3-8B"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"hidden_size": 4096, "intermediate_size": 12288,
                                                    "num_hidden_layers": 36, "num_attention_heads": 32,
                                                    "num_key_value_heads": 8, "vocab_size": 151936}))
    assert resolve_model_name(store, str(folder)) == "Qwen3-8B"
    with pytest.raises(StorageError, match="unknown model 'llama-7b'.*models with winners in the database: qwen3"):
        resolve_model_name(store, "llama-7b")


def _exported(store, model: str, gpu: str, path) -> str:
    result = run("export", "--model", model, "--gpu", gpu, "-o", path, "--db", store.url)
    assert result.exit_code == 0, result.output
    return str(path)


def _attention_only(table_path, tmp_path) -> str:
    """A table of the same model and GPU holding one op (as `tune --op decode_attention` exports)
    with its own kernel hash, and a bucket the other table does not have."""
    data = json.loads(open(table_path).read())
    op = next(iter(data["ops"]))
    data["ops"] = {op: {**data["ops"][op], "kernel_hash": "feedfacefeedface"}}
    path = tmp_path / "part.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_merge_takes_each_op_from_the_last_table_that_has_it(filled, tmp_path):
    store, _ = filled
    base = _exported(store, "qwen3-8b", "H100", tmp_path / "base.json")
    part = _attention_only(base, tmp_path)
    out = tmp_path / "merged.json"
    result = run("merge", base, part, "-o", out)
    assert result.exit_code == 0, result.output
    merged, base_table = load_table(out), load_table(base)
    assert set(merged.ops) == set(base_table.ops)
    replaced = next(iter(json.loads(open(part).read())["ops"]))
    assert merged.ops[replaced].kernel_hash == "feedfacefeedface"
    assert merged.fingerprint["kernel_hashes"] == {op: e.kernel_hash for op, e in merged.ops.items()}
    assert all(merged.ops[op] == base_table.ops[op] for op in merged.ops if op != replaced)
    assert f"{replaced} from part.json" in result.stderr


@pytest.mark.parametrize("what", ["model", "gpu", "one"])
def test_merge_refuses_tables_that_do_not_belong_together(filled, tmp_path, what):
    store, _ = filled
    base = _exported(store, "qwen3-0.6b", "H100", tmp_path / "base.json")
    if what == "model":
        other, words = _exported(store, "qwen3-8b", "H100", tmp_path / "8b.json"), ("model", "qwen3-8b")
    elif what == "gpu":
        other, words = _exported(store, "qwen3-0.6b", "H200", tmp_path / "h200.json"), ("fingerprint", "one GPU")
    else:
        other, words = None, ("two tables",)
    result = run("merge", base, *([other] if other else []), "-o", tmp_path / "out.json")
    assert_one_line_error(result, *words)
    assert not (tmp_path / "out.json").exists()


def test_export_takes_the_models_one_dtype_when_none_is_given(tmp_path):
    """A CPU tune writes float16 winners: export without --dtype takes the one dtype there is, asks
    for one among several, and takes bfloat16 where it is among them."""
    from tests.cli.test_bad_input import COMMITTED

    url = f"sqlite:///{tmp_path / 'ks.db'}"

    def table_in(dtype):
        data = json.loads(COMMITTED.read_text())
        data["dtype"], data["model"] = dtype, "half-model"
        for entry in data["ops"].values():  # M = 1 alone: the bf16 configs of larger tiles outgrow fp32's smem
            entry["buckets"] = [b for b in entry["buckets"] if b["m"] == 1]
        path = tmp_path / f"{dtype}.json"
        path.write_text(json.dumps(data))
        return path

    assert run("import", table_in("float16"), "--db", url).exit_code == 0
    result = run("export", "--model", "half-model", "--db", url)
    assert result.exit_code == 0, result.output
    assert load_table(json.loads(result.stdout)).dtype == "float16"
    assert run("import", table_in("float32"), "--db", url).exit_code == 0
    assert_one_line_error(run("export", "--model", "half-model", "--db", url), "float16 and float32", "--dtype")
    result = run("export", "--model", "half-model", "--dtype", "float32", "--db", url)
    assert result.exit_code == 0 and load_table(json.loads(result.stdout)).dtype == "float32"
    assert run("import", table_in("bfloat16"), "--db", url).exit_code == 0
    assert load_table(json.loads(run("export", "--model", "half-model", "--db", url).stdout)).dtype == "bfloat16"
