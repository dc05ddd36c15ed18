"""`generate` and `bench` from the command line (CPU: bench refuses politely)."""

import dataclasses
import json

import pytest
import torch

from qwen3.generate import Generator
from qwen3.loader import load_model
from tests.cli.helpers import assert_one_line_error, run
from tests.qwen3.helpers import FMA_M1, TINY, save_with_tokenizer, table_dict


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    save_with_tokenizer(dataclasses.replace(TINY, tie_word_embeddings=False), path, seed=3)
    return path


def test_generate_streams_the_greedy_text(folder):
    from transformers import AutoTokenizer

    result = run("generate", folder, "--prompt", "the cat sat on", "--max-tokens", "6")
    assert result.exit_code == 0, result.output
    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    gen = Generator(load_model(folder, dtype=torch.float32, device="cpu"), max_batch=1, max_len=16)
    ids = gen.generate([tok("the cat sat on")["input_ids"]], 6, stop_ids=[tok.eos_token_id])[0]
    assert result.stdout == tok.decode(ids, skip_special_tokens=True)
    assert "tokens/s" in result.stderr and "0/5 ops fused" in result.stderr


def test_generate_with_a_table_runs_fused(folder, tmp_path):
    shapes = load_model(folder, dtype=torch.float32, device="cpu").op_shapes()
    table = tmp_path / "t.json"
    table.write_text(json.dumps(table_dict(shapes, [(1, "fused", FMA_M1)])))
    # float32 as the table was tuned: on a GPU generate's default, bfloat16, would run every op unfused
    plain = run("generate", folder, "-p", "dog", "-n", "2", "--dtype", "float32")
    fused = run("generate", folder, "-p", "dog", "-n", "2", "--dtype", "float32", "--table", table)
    assert fused.exit_code == 0, fused.output
    assert fused.stdout == plain.stdout
    assert "5/5 ops fused" in fused.stderr


def test_generate_user_errors_are_one_line(folder, tmp_path):
    assert_one_line_error(run("generate", tmp_path / "nope", "-p", "x"), "does not exist")
    assert_one_line_error(run("generate", tmp_path, "-p", "x"), "no config.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": 1}))
    assert_one_line_error(run("generate", folder, "-p", "x", "-n", "4", "--table", bad), "created")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_bench_without_a_gpu_is_a_one_line_error():
    assert_one_line_error(run("bench", "--model", "qwen3-tiny"), "needs a CUDA GPU")


@pytest.mark.parametrize("args, words", [
    (("--context", "256,0"), ("--context", "positive", "'256,0'")),
    (("--prompt-len", "1k"), ("--context", "comma list of ints", "'1k'")),  # the old name, same check
    (("--batch", "x"), ("--batch", "'x'")),
    (("--context", "40960"), ("--context 40960", "max_position_embeddings 40960")),
])
def test_bench_refuses_bad_lists_before_looking_for_a_gpu(args, words):
    assert_one_line_error(run("bench", "--model", "qwen3-0.6b", *args), *words)


# A template in the shape of Qwen3's (role markers, the generation prompt), over the test vocabulary.
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {{ eos_token }}\n{% endfor %}"
                 "{% if add_generation_prompt %}a {% endif %}")


@pytest.fixture(scope="module")
def chat_folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_chat")
    save_with_tokenizer(dataclasses.replace(TINY, tie_word_embeddings=False), path, seed=3)
    config_path = path / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = CHAT_TEMPLATE
    config_path.write_text(json.dumps(config))
    return path


def test_tokenizer_matches_transformers(chat_folder):
    """Item 14: generate reads the tokenizer with `tokenizers` (+ jinja2), the same ids as transformers."""
    from transformers import AutoTokenizer

    from cli.tokenizer import Tokenizer

    ours, theirs = Tokenizer(chat_folder), AutoTokenizer.from_pretrained(str(chat_folder), local_files_only=True)
    for text in ("the cat sat on the mat", "red   blue, dog!", "zebra unknown words", ""):
        assert ours.encode(text) == theirs(text)["input_ids"]
        ids = ours.encode(text)
        assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=True)
    messages = [{"role": "user", "content": "the dog ran"}]
    expected = theirs.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    expected = expected["input_ids"] if isinstance(expected, dict) or hasattr(expected, "keys") else expected
    assert ours.apply_chat_template(messages) == list(expected)
    assert ours.eos_token_id == theirs.eos_token_id


def test_generate_runs_without_transformers(chat_folder, monkeypatch):
    """After `pip install -e .` (no test extra) transformers is absent: generate must not need it."""
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    result = run("generate", chat_folder, "-p", "the dog", "-n", "3", "--chat")
    assert result.exit_code == 0, result.output
    assert "tokens/s" in result.stderr


def _broken_folder(tmp_path, folder, name: str, content: bytes | None):
    """A copy of a model folder with one file replaced (None: removed)."""
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    target = copy / name
    if content is None:
        target.unlink()
    else:
        target.write_bytes(content)
    return copy


@pytest.mark.parametrize(("name", "content", "words"), [
    ("model.safetensors", None, ["has no *.safetensors files"]),
    ("model.safetensors", b"", ["damaged or not one"]),
    ("model.safetensors", b"garbage" * 100, ["damaged or not one"]),
    ("model.safetensors.index.json", b"[1]", ["has no weight_map"]),
    ("tokenizer.json", None, ["has no tokenizer.json"]),
    ("tokenizer.json", b"{}", ["is not a tokenizer file"]),
    ("tokenizer_config.json", b"[", ["is not JSON"]),
    ("config.json", b"[1, 2]", ["not an object"]),
    ("config.json", b'{"hidden_size": "big"}', ["lacks"]),
    ("generation_config.json", b"{", ["is not JSON"]),
])
def test_generate_on_broken_folders_is_one_line(folder, tmp_path, name, content, words):
    """Item 14: a folder without weights (or with broken files) ended in a traceback."""
    broken = _broken_folder(tmp_path, folder, name, content)
    assert_one_line_error(run("generate", broken, "-p", "the cat", "-n", "2"), *words)


def test_generate_bad_options(folder):
    for option in ("--temperature", "--top-p"):
        refused = run("generate", folder, "-p", "the", option, "nan")
        assert refused.exit_code == 2 and option in refused.stderr and "Traceback" not in refused.output
    assert_one_line_error(run("generate", folder, "-p", "the", "--chat", "-n", "2"), "no chat template")
    assert_one_line_error(run("generate", folder, "-p", "", "-n", "2"), "encodes to no tokens")
    long = run("generate", folder, "-p", "the " * 70, "-n", "2")
    assert_one_line_error(long, "the model's context holds 64")
    clamped = run("generate", folder, "-p", "the cat", "--max-tokens", str(10**12))
    assert clamped.exit_code == 0, clamped.output
    assert "--max-tokens lowered to 62" in clamped.stderr and "Traceback" not in clamped.output


@pytest.mark.parametrize(("args", "words"), [
    (["--batch", "1,x"], ["--batch must be a comma list"]),
    (["--batch", "100000000"], ["--batch must list ints from 1 to 4096"]),
    (["--prompt-len", "40000", "--output-len", "2000"], ["exceeds qwen3-0.6b's max_position_embeddings"]),
    (["--dtype", "int8"], ["unknown dtype 'int8'"]),
    (["--model", ""], ["model must be a preset"]),
    (["--model", "/dev/zero"], ["not a regular file"]),
])
def test_bench_options_are_checked_before_the_gpu(args, words):
    assert_one_line_error(run("bench", *args), *words)


def test_a_tokenizer_of_another_model_is_one_line(folder, tmp_path):
    """A tokenizer.json whose ids pass the model's vocabulary failed deep in the embedding."""
    config = json.loads((folder / "config.json").read_text())
    small = _broken_folder(tmp_path, folder, "config.json", json.dumps({**config, "vocab_size": 8}).encode())
    assert_one_line_error(run("generate", small, "-p", "the blue dog", "-n", "2"), "beyond the model's vocabulary")
