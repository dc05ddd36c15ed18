"""`kernel-search tune` as a user meets it: Ctrl-C, the summary, the next: hint, bad options (issue 14)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.cli.helpers import assert_one_line_error, run
from tests.conftest import child_env


def _env() -> dict:
    env = child_env(TRITON_INTERPRET="1")
    env.pop("KERNEL_SEARCH_DB", None)
    return env


def _ctrl_c_as_a_terminal_sends_it() -> None:
    """The child starts with Ctrl-C's default action, whatever this process inherited: a test run in
    the background of a shell without job control has SIGINT ignored, and a Python started so keeps
    it ignored (it installs no KeyboardInterrupt handler), as a user's `nohup ... &` tune would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_leaves_one_line_and_a_resumable_study(tmp_path):
    """Item 2: the terminal's SIGINT reaches the whole process group (parent, benchmark child,
    compile pool); the user sees one line saying how to resume, no traceback, and the resume works."""
    db = f"sqlite:///{tmp_path / 'ks.db'}"
    cmd = [sys.executable, "-m", "cli.app", "tune", "--model", "qwen3-tiny", "--op", "o_proj_residual",
           "--buckets", "1,2,4", "--trials", "6", "--db", db]
    err = tmp_path / "err.txt"
    with open(err, "w") as handle:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=handle, text=True, env=_env(), cwd=tmp_path,
                                start_new_session=True, preexec_fn=_ctrl_c_as_a_terminal_sends_it)
        deadline = time.monotonic() + 240
        while "M=1 " not in err.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)  # the first study's line: the child runs the second study's trials now
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    stderr = err.read_text()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.rstrip().endswith("interrupted: run the same command again to resume"), stderr
    again = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "tuned 3 studies" in again.stdout


def test_summary_hint_names_the_dtype_and_db_and_rows_stay_within_trials(tmp_path):
    """Items 8 and 11: the printed next command works as printed; --trials 3 stores at most 3 rows a study."""
    db = f"sqlite:///{tmp_path / 'ks.db'}"
    result = run("tune", "--model", "qwen3-tiny", "--op", "down_residual", "--buckets", "1", "--trials", "3",
                 "--db", db)
    assert result.exit_code == 0, result.output
    hint = next(line for line in result.stdout.splitlines() if line.startswith("next: "))
    assert hint == f"next: kernel-search export --model qwen3-tiny --dtype float16 --db {db} -o table.json"
    args = hint.removeprefix("next: kernel-search ").split()
    args[args.index("table.json")] = str(tmp_path / "table.json")
    assert run(*args).exit_code == 0
    shown = run("show", "--wide", "--db", db).stdout
    row = next(line for line in shown.splitlines() if "down_residual" in line and "x" in line)
    assert row.split()[-6] in ("1", "2", "3"), row  # the trials column


def test_the_hint_names_the_gpu_when_the_database_holds_another_fingerprint(tmp_path):
    """A table of older kernels imported beside a tune (its fingerprint differs): export alone cannot
    choose, so the hint adds this tune's --gpu key, and the hinted command works as printed."""
    import json

    db = f"sqlite:///{tmp_path / 'ks.db'}"
    tune = ("tune", "--model", "qwen3-tiny", "--op", "down_residual", "--buckets", "1", "--trials", "3", "--db", db)
    assert run(*tune).exit_code == 0
    table = tmp_path / "old.json"
    assert run("export", "--model", "qwen3-tiny", "--dtype", "float16", "--db", db, "-o", str(table)).exit_code == 0
    data = json.loads(table.read_text())
    data["fingerprint"]["kernel_hashes"]["down_residual"] = "0" * 16  # as if tuned on older kernels
    table.write_text(json.dumps(data))
    assert run("import", str(table), "--db", db).exit_code == 0
    again = run(*tune)
    assert again.exit_code == 0, again.output
    hint = next(line for line in again.stdout.splitlines() if line.startswith("next: "))
    args = hint.removeprefix("next: kernel-search ").split()
    assert "--gpu" in args, hint
    assert run("export", "--model", "qwen3-tiny", "--dtype", "float16", "--db", db).exit_code != 0  # ambiguous
    args[args.index("table.json")] = str(tmp_path / "table.json")
    assert run(*args).exit_code == 0
    assert json.loads((tmp_path / "table.json").read_text())["ops"]["down_residual"]["kernel_hash"] != "0" * 16


def test_a_study_without_winner_is_not_called_unfused(monkeypatch, tmp_path):
    """Item 10: a study that found no winner is listed with its reason, and the exit status is 1."""
    import tuner.tune
    from tuner.search import StudyOutcome
    from tuner.tune import TuneReport

    def no_winner(store, config, ops, buckets, dtype, opts, seconds, on_study, on_trial, on_done, contexts):
        outcome = StudyOutcome("rmsnorm_qkv", 4, trials=3, new_trials=3, failed=3,
                               note="confirmation failed: worker died (exit code -9)")
        on_done(outcome)
        return TuneReport(config.name, {}, [outcome], [], 1.0)

    monkeypatch.setattr(tuner.tune, "tune_model", no_winner)
    result = run("tune", "--model", "qwen3-tiny", "--buckets", "4", "--db", f"sqlite:///{tmp_path / 'ks.db'}")
    assert result.exit_code == 1
    assert "fused wins 0, unfused 0, no winner 1" in result.stdout
    assert "rmsnorm_qkv M=4: confirmation failed" in result.stderr and "next:" not in result.stdout


@pytest.mark.parametrize(("args", "words"), [
    (["--buckets", "100000000"], ["bucket 100000000 is above 65536"]),
    (["--buckets", "0,1"], ["buckets must be positive"]),
    (["--buckets", "one"], ["buckets must be decode, prefill, all"]),
    (["--op", "nope"], ["unknown op 'nope'"]),
    (["--dtype", "int8"], ["unknown dtype 'int8'"]),
    (["--model", "nope"], ["unknown model 'nope'"]),
    (["--model", ""], ["model must be a preset"]),
    (["--model", "/dev/zero"], ["not a regular file"]),
    (["--seed", "-1"], []),
])
def test_bad_tune_options_are_one_line(tmp_path, args, words):
    db = tmp_path / "ks.db"
    result = run("tune", "--model", "qwen3-tiny", *args, "--db", f"sqlite:///{db}")
    if words:
        assert_one_line_error(result, *words)
    else:  # typer's own usage error
        assert result.exit_code == 2 and "Traceback" not in result.output
    assert not db.exists()  # refused before anything was created


def test_tune_refuses_another_applications_database(tmp_path):
    import sqlite3

    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (x)")
    before = path.read_bytes()
    result = run("tune", "--model", "qwen3-tiny", "--buckets", "1", "--db", f"sqlite:///{path}")
    assert_one_line_error(result, "another application's database")
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


def test_tune_a_config_json_in_the_working_directory(monkeypatch, tmp_path):
    """Item 4: `--model config.json` inside the model's folder names the model after the folder."""
    import json

    from qwen3.config import PRESETS

    folder = tmp_path / "my-qwen"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(PRESETS["qwen3-tiny"].to_hf_dict()))
    monkeypatch.chdir(folder)
    result = run("tune", "--model", "config.json", "--allow-cpu", "--op", "down_residual", "--buckets", "1",
                 "--trials", "2", "--db", f"sqlite:///{tmp_path / 'ks.db'}")
    assert result.exit_code == 0, result.output
    assert "tuned 1 studies of my-qwen" in result.stdout


@pytest.mark.parametrize(("change", "words"), [
    ({"hidden_size": "72"}, ["hidden_size must be an integer", "'72'"]),
    ({"num_attention_heads": 0}, ["num_attention_heads must be an integer", "got 0"]),
    ({"num_key_value_heads": 3}, ["multiple of num_key_value_heads"]),
    ({"rms_norm_eps": "tiny"}, ["rms_norm_eps must be a positive finite number"]),
    ({"vocab_size": 10**40}, ["vocab_size must be an integer", "a huge int"]),
])
def test_bad_config_json_is_one_line(tmp_path, change, words):
    """Item 5: string sizes were a TypeError, 0 heads a ZeroDivisionError."""
    import json

    from qwen3.config import PRESETS

    path = tmp_path / "config.json"
    path.write_text(json.dumps({**PRESETS["qwen3-tiny"].to_hf_dict(), **change}))
    assert_one_line_error(run("tune", "--model", path, "--db", f"sqlite:///{tmp_path / 'ks.db'}"), *words)
    path.write_text("[1, 2]")
    assert_one_line_error(run("tune", "--model", path, "--db", f"sqlite:///{tmp_path / 'ks.db'}"), "not an object")


def test_trials_caps_the_rows_of_every_study(tmp_path):
    """Item 11: `--trials 8` stored up to 11 rows a study (a config asked twice in one batch was
    measured twice); this tune's o_proj_residual M=4 study was such a case."""
    from storage import Store
    from storage.queries import studies_frame

    url = f"sqlite:///{tmp_path / 'ks.db'}"
    result = run("tune", "--model", "qwen3-tiny", "--op", "o_proj_residual", "--buckets", "1,4", "--trials", "8",
                 "--db", url)
    assert result.exit_code == 0, result.output
    with Store(url) as store:
        counts = studies_frame(store)["trials"].tolist()
    assert len(counts) == 2 and max(counts) <= 8, counts


@pytest.mark.parametrize(("args", "words"), [
    (["--contexts", "4k"], ["contexts must be a comma list of ints, got '4k'"]),
    (["--contexts", "0,64"], ["contexts must be ints in [1,"]),
    (["--contexts", "50000"], ["context 50000 exceeds qwen3-tiny's max_position_embeddings 40960"]),
    (["--op", "decode_attention", "--buckets", "prefill"], ["nothing to tune", "decode bucket (<= 256)"]),
])
def test_bad_attention_scope_is_one_line(tmp_path, args, words):
    """decode attention's contexts and batches are refused before anything is created."""
    db = tmp_path / "ks.db"
    assert_one_line_error(run("tune", "--model", "qwen3-tiny", *args, "--db", f"sqlite:///{db}"), *words)
    assert not db.exists()


def test_a_model_whose_heads_the_attention_kernels_cannot_take_leaves_decode_attention_out(tmp_path):
    """head_dim 80: the model runs PyTorch's attention, so tune and check leave decode_attention out and say
    so (its tune had a study per bucket whose unfused arm, the Triton q/k prep, could not run: each ended
    without a winner, and until the thirty-third session the tune died there with 'No row was found')."""
    import json

    from qwen3.config import PRESETS, resolve_model
    from tuner.distributed import study_keys

    tiny = PRESETS["qwen3-tiny"]
    path = tmp_path / "hd80.json"
    path.write_text(json.dumps({**tiny.to_hf_dict(), "head_dim": 80}))
    config = resolve_model(str(path))
    assert "head_dim 80 is not a power of two" in config.attention_unsupported()
    assert tiny.attention_unsupported() is None
    assert study_keys(config, ["decode_attention", "lm_head"], [1, 2], "float32", (64,)) == [
        ("lm_head", 1), ("lm_head", 2)]
    db = f"sqlite:///{tmp_path / 'ks.db'}"
    for command in ("tune", "check"):
        extra = ("--allow-cpu", "--db", db) if command == "tune" else ()
        assert_one_line_error(run(command, "--model", path, "--op", "decode_attention", "--dtype", "float32", *extra),
                              f"nothing to {command}: hd80's head_dim 80 is not a power of two", "SDPA")
    result = run("check", "--model", path, "--op", "decode_attention", "--op", "down_residual", "--dtype", "float32",
                 "--ms", "1", "--configs", "1")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("decode_attention left out: hd80's head_dim 80")
    assert "all 1 checks passed" in result.stdout
