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
    assert "tokens/s" in result.stderr and "0/4 ops fused" in result.stderr


def test_generate_with_a_table_runs_fused(folder, tmp_path):
    shapes = load_model(folder, dtype=torch.float32, device="cpu").op_shapes()
    table = tmp_path / "t.json"
    table.write_text(json.dumps(table_dict(shapes, [(1, "fused", FMA_M1)])))
    plain = run("generate", folder, "-p", "dog", "-n", "2")
    fused = run("generate", folder, "-p", "dog", "-n", "2", "--table", table)
    assert fused.exit_code == 0, fused.output
    assert fused.stdout == plain.stdout
    assert "4/4 ops fused" in fused.stderr


def test_generate_user_errors_are_one_line(folder, tmp_path):
    assert_one_line_error(run("generate", tmp_path / "nope", "-p", "x"), "does not exist")
    assert_one_line_error(run("generate", tmp_path, "-p", "x"), "no config.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": 1}))
    assert_one_line_error(run("generate", folder, "-p", "x", "--table", bad), "created")


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
