"""benchmarks/e2e_matrix.py's CPU-side pieces: which cells fit a GPU, the result file that survives a
cut-off run, the markdown table. (The measurements themselves need a GPU.)"""

import dataclasses
import json

import pytest
import torch

from benchmarks import e2e_matrix as mx
from qwen3.config import PRESETS
from qwen3.loader import random_weights

H100 = 85_000_000_000  # bytes torch reports for an H100 80GB


@pytest.mark.parametrize("tied", [True, False])
def test_weight_bytes_count_every_parameter_once(tied):
    config = dataclasses.replace(PRESETS["qwen3-tiny"], tie_word_embeddings=tied)
    model = random_weights(config, torch.bfloat16, "cpu")
    assert mx.weight_bytes(config) == sum(p.numel() * p.element_size() for p in model.parameters())


def test_kv_bytes_of_8b_at_batch_32_and_32k():
    # 36 layers x K,V x 32 x 32768 x 8 heads x 128 x 2 bytes: the ~150 GB that no H100 holds.
    assert mx.kv_bytes(PRESETS["qwen3-8b"], 32, 32768) == 36 * 2 * 32 * 32768 * 8 * 128 * 2 == 154_618_822_656


def test_on_an_h100_only_the_batch_32_by_32k_cells_are_skipped():
    skipped = [(m, b, c) for m in ("qwen3-0.6b", "qwen3-8b") for b in (1, 8, 32) for c in (256, 2048, 8192, 32768)
               if not mx.cell_fits(PRESETS[m], b, c, 64, H100)[0]]
    assert skipped == [("qwen3-0.6b", 32, 32768), ("qwen3-8b", 32, 32768)]
    fits, text = mx.cell_fits(PRESETS["qwen3-8b"], 32, 32768, 64, H100)
    assert "KV cache 154.9 GB" in text and "of 92% x 85.0 GB" in text
    # The cache is sized for the CUDA graph's bucket: batch 5 runs in the bucket of 8.
    assert "KV cache 0.4 GB" in mx.cell_fits(PRESETS["qwen3-8b"], 5, 256, 64, H100)[1]


@pytest.mark.parametrize("name, short", [("NVIDIA H100 80GB HBM3", "H100"), ("NVIDIA H200", "H200"),
                                         ("NVIDIA A100-SXM4-80GB", "A100"), ("Some GPU", "Some_GPU")])
def test_short_gpu_names(name, short):
    assert mx.short_gpu(name) == short


HEADER = {"gpu": "NVIDIA H100 80GB HBM3", "date": "2026-11-26", "output_len": 64, "repeats": 3,
          "torch_compile": {"mode": "reduce-overhead", "compile_prefill": True, "decode_attention": "math",
                            "coordinate_descent": True}}


def row(arm, tok_s, prefill_ms, batch=8, context=8192, model="qwen3-0.6b"):
    return {"model": model, "batch": batch, "context": context, "arm": arm, "decode_tok_s": tok_s,
            "prefill_ms": prefill_ms}


def test_the_file_is_rewritten_after_every_arm_and_a_rerun_continues_it(tmp_path):
    out = tmp_path / "m.json"
    results = mx.load_results(out, HEADER, fresh=False)
    skip = {**row("table", 0, 0), "reason": "out of memory: ..."}
    del skip["decode_tok_s"], skip["prefill_ms"]
    mx.record(results, out, skipped=skip)
    mx.record(results, out, row=row("unfused", 1400.0, 100.0))
    saved = json.loads(out.read_text())
    assert [r["arm"] for r in saved["rows"]] == ["unfused"] and len(saved["skipped"]) == 1
    again = mx.load_results(out, HEADER, fresh=False)
    assert mx.done(again) == {("qwen3-0.6b", 8, 8192, "unfused")}
    mx.record(again, out, row=row("table", 1500.0, 90.0))  # the arm that failed before now ran: note gone
    mx.record(again, out, row=row("unfused", 1450.0, 99.0))  # a repeat replaces, never duplicates
    saved = json.loads(out.read_text())
    assert sorted((r["arm"], r["decode_tok_s"]) for r in saved["rows"]) == [("table", 1500.0), ("unfused", 1450.0)]
    assert saved["skipped"] == []
    assert mx.load_results(out, HEADER, fresh=True)["rows"] == []


def test_a_file_of_another_gpu_or_peer_setting_is_not_continued(tmp_path):
    out = tmp_path / "m.json"
    mx.record(mx.load_results(out, HEADER, False), out, row=row("unfused", 1.0, 1.0))
    with pytest.raises(ValueError, match="holds gpu 'NVIDIA H100 80GB HBM3', this run 'NVIDIA H200'"):
        mx.load_results(out, {**HEADER, "gpu": "NVIDIA H200"}, False)
    with pytest.raises(ValueError, match="torch_compile"):
        mx.load_results(out, {**HEADER, "torch_compile": {**HEADER["torch_compile"], "mode": "max-autotune"}}, False)
    mx.load_results(out, {**HEADER, "date": "2026-11-27"}, False)  # another day continues


def test_markdown_has_the_ratio_per_cell_and_the_cells_not_measured(tmp_path, capsys):
    results = {**HEADER, "rows": [row("unfused", 1487.0, 120.0), row("table", 1460.0, 110.0),
                                  row("torch_compile", 1868.0, 100.0), row("unfused", 588.0, 9.0, 1, 256)],
               "skipped": [{"model": "qwen3-8b", "batch": 32, "context": 32768, "arm": "all",
                            "reason": "does not fit: KV cache 154.9 GB"}]}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(results))
    assert mx.main(["--render", str(path)]) == 0
    text = capsys.readouterr().out
    lines = [line for line in text.splitlines() if line.startswith("| qwen3")]
    assert lines == ["| qwen3-0.6b | 256 | 1 | 588 | - | - | - | 9.0 | - | - | - | - | - |",
                     "| qwen3-0.6b | 8,192 | 8 | 1,487 | 1,460 | 1,868 | 0.78x | 120.0 | 110.0 | 100.0 | 1.10x "
                     "| - | - |"]
    assert "not measured: qwen3-8b batch 32 context 32,768 (all): does not fit: KV cache 154.9 GB" in text
    # With the file's copy bandwidth, the floor: weights + K/V at the context, once a step.
    path.write_text(json.dumps({**results, "copy_bandwidth": 3.0e12}))
    assert mx.main(["--render", str(path)]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("| qwen3-0.6b | 8,192")][0]
    c = PRESETS["qwen3-0.6b"]
    floor = 8 * 3.0e12 / (mx.weight_bytes(c) + 28 * 2 * 8 * 8192 * 8 * 128 * 2)
    assert line.endswith(f"| {floor:,.0f} | {1460 / floor:.0%} |") and 2700 < floor < 2800
    # A combined file of several processes keeps each table row's own bandwidth: that one counts.
    rows = [{**r, "copy_bandwidth": 2.0e12} if r["arm"] == "table" else r for r in results["rows"]]
    path.write_text(json.dumps({**results, "rows": rows, "copy_bandwidth": 3.0e12}))
    assert mx.main(["--render", str(path)]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("| qwen3-0.6b | 8,192")][0]
    assert line.endswith(f"| {floor * 2 / 3:,.0f} | {1460 / (floor * 2 / 3):.0%} |")


def test_the_floor_of_8b_at_batch_1_is_its_weights_at_the_bandwidth():
    c = PRESETS["qwen3-8b"]
    # An untied embedding table is read one row a sequence, not whole: the LM head is the 8B's other copy.
    step = mx.weight_bytes(c) - 2 * c.vocab_size * c.hidden_size
    assert not c.tie_word_embeddings and mx.step_weight_bytes(c) == step
    assert mx.step_floor_tok_s(c, 1, 1, 3.0e12) == pytest.approx(3.0e12 / step, rel=1e-3)
    kv = 36 * 2 * 8 * 8192 * 8 * 128 * 2  # layers x (K, V) x batch x slots x KV heads x head_dim x bf16
    assert mx.step_floor_tok_s(c, 8, 8192, 3.0e12) == pytest.approx(8 * 3.0e12 / (step + kv))


def test_tables_are_named_per_model(tmp_path):
    table = tmp_path / "t.json"
    table.write_text("{}")
    assert mx.parse_tables([f"qwen3-0.6b={table}"], ["qwen3-0.6b"], ["table"]) == {"qwen3-0.6b": table}
    with pytest.raises(ValueError, match="MODEL=FILE, got 'qwen3-0.6b'"):
        mx.parse_tables(["qwen3-0.6b"], ["qwen3-0.6b"], ["table"])
    with pytest.raises(ValueError, match="no such file"):
        mx.parse_tables([f"qwen3-0.6b={tmp_path}/none.json"], ["qwen3-0.6b"], ["table"])
    with pytest.raises(ValueError, match="for qwen3-8b"):
        mx.parse_tables([f"qwen3-0.6b={table}"], ["qwen3-0.6b", "qwen3-8b"], ["unfused", "table"])
    assert mx.parse_tables([], ["qwen3-8b"], ["unfused", "torch_compile"]) == {}


def test_the_peer_settings_of_the_command_line_go_into_the_file_header():
    from dataclasses import asdict

    from benchmarks.gptfast_qwen3 import settings_from

    assert asdict(settings_from(mx.parse_args([]), "peer-")) == HEADER["torch_compile"]
    args = mx.parse_args(["--peer-mode", "max-autotune", "--peer-eager-prefill", "--peer-decode-attention", "sdpa",
                          "--peer-no-coordinate-descent"])
    assert asdict(settings_from(args, "peer-")) == {"mode": "max-autotune", "compile_prefill": False,
                                                    "decode_attention": "sdpa", "coordinate_descent": False}


@pytest.mark.parametrize("argv, words", [(["--arms", "table,eager"], "eager in 'table,eager'"),
                                         (["--contexts", "0,256"], "positive"),
                                         (["--batches", "a"], "comma list of ints")])
def test_bad_filters_are_refused(argv, words, capsys):
    with pytest.raises(SystemExit):
        mx.parse_args(argv)
    assert words in capsys.readouterr().err


def test_a_run_skips_what_does_not_fit_survives_an_oom_and_a_rerun_only_redoes_what_is_missing(
        tmp_path, monkeypatch, capsys):
    """The loop with the GPU work replaced: run_arm answers from a script, one arm runs out of memory."""
    calls, ooms = [], [("torch_compile", 1, 32768)]  # out of memory once

    def run_arm(arm, model, dispatchers, batch, context, args):
        calls.append((arm, batch, context))
        if (arm, batch, context) in ooms:
            ooms.clear()
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB\nmore")
        return {"decode_tok_s": 1000.0 / batch + context / 1e3, "prefill_ms": context / 100}

    monkeypatch.setattr(mx, "run_arm", run_arm)
    monkeypatch.setattr(mx, "load", lambda config, table, seed: ("model", {}))
    monkeypatch.setattr(mx, "free", lambda model: None)
    args = mx.parse_args(["--models", "qwen3-0.6b", "--batches", "1,32", "--contexts", "256,32768"])
    out = tmp_path / "m.json"
    results = mx.load_results(out, HEADER, False)
    mx.run_model("qwen3-0.6b", args, None, results, out, H100)
    cells = [(b, c) for c in (256, 32768) for b in (1, 32) if (b, c) != (32, 32768)]
    assert calls == [(a, b, c) for b, c in cells for a in mx.ARMS]
    saved = json.loads(out.read_text())
    assert len(saved["rows"]) == 3 * len(cells) - 1
    assert [(s["batch"], s["context"], s["arm"], s["reason"][:21]) for s in saved["skipped"]] == [
        (1, 32768, "torch_compile", "out of memory: CUDA o"), (32, 32768, "all", "does not fit: weights")]
    printed = capsys.readouterr().out
    assert "table / torch_compile: decode 1.00x, prefill time 1.00x" in printed
    assert "torch_compile failed, skipped: out of memory: CUDA out of memory. Tried to allocate 9.00 GiB\n" in printed
    calls.clear()
    mx.run_model("qwen3-0.6b", args, None, mx.load_results(out, HEADER, False), out, H100)
    assert calls == [("torch_compile", 1, 32768)]  # everything else was in the file
    saved = json.loads(out.read_text())
    assert len(saved["rows"]) == 3 * len(cells) and [s["arm"] for s in saved["skipped"]] == ["all"]


@pytest.mark.parametrize("error, stops", [(RuntimeError("Triton compile failed\nlog"), False),
                                          (RuntimeError("CUDA error: an illegal memory access was encountered"), True)])
def test_a_failed_arm_is_noted_and_only_a_cuda_error_stops_the_run(tmp_path, monkeypatch, error, stops):
    def run_arm(arm, *args):
        if arm == "table":
            raise error
        return {"decode_tok_s": 1.0, "prefill_ms": 1.0}

    monkeypatch.setattr(mx, "run_arm", run_arm)
    monkeypatch.setattr(mx, "load", lambda config, table, seed: ("model", {}))
    monkeypatch.setattr(mx, "free", lambda model: None)
    args = mx.parse_args(["--models", "qwen3-0.6b", "--batches", "1", "--contexts", "256,2048"])
    out = tmp_path / "m.json"
    run = lambda: mx.run_model("qwen3-0.6b", args, None, mx.load_results(out, HEADER, False), out, H100)
    if stops:
        with pytest.raises(RuntimeError, match="illegal memory access"):
            run()
    else:
        run()
    saved = json.loads(out.read_text())
    assert [r["arm"] for r in saved["rows"]] == (["unfused"] if stops else ["unfused", "torch_compile"] * 2)
    assert saved["skipped"][0]["reason"] == f"RuntimeError: {str(error).splitlines()[0]}"


@pytest.mark.parametrize("argv, words", [
    (["--models", "qwen3-9b", "--arms", "unfused"], "unknown model 'qwen3-9b'"),
    (["--models", "qwen3-0.6b", "--contexts", "40960", "--arms", "unfused"], "context 40960 + --output-len 64"),
    (["--models", "qwen3-0.6b"], "arm table needs --table MODEL=FILE for qwen3-0.6b"),
    pytest.param(["--models", "qwen3-0.6b", "--arms", "unfused"], "needs a CUDA GPU",  # the inputs were fine
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU this would run the matrix")),
])
def test_bad_inputs_are_one_line_errors_before_any_gpu_work(argv, words, capsys):
    assert mx.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and len(err.splitlines()) == 1


def test_load_runs_one_unfused_cell_that_is_thrown_away(monkeypatch):
    """A process's first cell is not like the others (benchmarks/README.md, seventh session): load runs a
    short unfused cell before any cell is measured."""
    import qwen3.bench
    import qwen3.loader

    cells = []

    class Model:
        def set_dispatcher(self, ops):
            self.ops = ops

    def bench_cell(model, arm, batch, context, output_len, repeats=3, seed=0, breakdown=False):
        cells.append((model.ops.table, arm, batch, context, output_len, repeats))

    monkeypatch.setattr(qwen3.loader, "random_weights", lambda config, dtype, device, seed: Model())
    monkeypatch.setattr(qwen3.bench, "bench_cell", bench_cell)
    model, dispatchers = mx.load(PRESETS["qwen3-0.6b"], None, 0)
    assert cells == [(None, "thrown away", 1, qwen3.bench.FIRST_CELL_CONTEXT, 8, 1)]
    assert list(dispatchers) == ["unfused"] and dispatchers["unfused"].table is None


def test_a_row_says_what_decode_attention_ran(tmp_path, monkeypatch):
    import qwen3.bench
    from qwen3.bench import BenchRow

    class Model:
        def set_dispatcher(self, ops):
            pass

    row = BenchRow("table", 8, 256, prefill_ms=6.123, decode_ms=1.3, tokens_per_s=6153.846,
                   attention="fused: table bucket M=8 ctx=1024, 1.95x vs unfused")
    monkeypatch.setattr(qwen3.bench, "bench_cell", lambda *a, **k: row)
    args = mx.parse_args(["--models", "qwen3-0.6b", "--batches", "8", "--contexts", "256", "--arms", "unfused"])
    out = tmp_path / "m.json"
    results = mx.load_results(out, HEADER, False)
    got = mx.measure({"model": "qwen3-0.6b", "batch": 8, "context": 256}, "table", Model(), {"table": None}, args,
                     results, out)
    assert got["attention"] == "fused: table bucket M=8 ctx=1024, 1.95x vs unfused"
    assert (got["decode_tok_s"], got["prefill_ms"]) == (6153.85, 6.12)
