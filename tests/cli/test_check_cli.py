"""`kernel-search check` on the CPU: its table fits a 100-column terminal (configs in brief), and
--wide prints every config key."""

from cli.check import _table, brief_config
from tests.cli.helpers import run
from tuner.check import CheckRow

GEMM = dict(impl="fused", path="fma", BLOCK_M=1, BLOCK_N=8, BLOCK_K=128, SPLIT_K=2, GROUP_M=1, num_warps=4,
            num_stages=3, split_reduce="kernel", prologue="inline")
ATTN = dict(impl="fused", SPLITS=16, BLOCK_N=64, pack="group", combine="kernel", num_warps=4, num_stages=2)


def test_brief_configs():
    assert brief_config(GEMM) == "fma 1x8x128 k2 w4 s3"
    assert brief_config(ATTN) == "group 16sp n64 w4 s2"
    assert brief_config({**ATTN, "prep": "separate"}) == "group 16sp n64 w4 s2"
    assert brief_config({**ATTN, "prep": "fused"}) == "group 16sp n64 w4 s2 +prep"
    assert brief_config({**ATTN, "prep": "fused", "kv": "early"}) == "group 16sp n64 w4 s2 +prep +early"
    assert brief_config({**ATTN, "kv": "loop"}) == "group 16sp n64 w4 s2"


def test_check_fits_100_columns_and_wide_shows_every_key():
    narrow = run("check", "--ms", "1", "--op", "o_proj_residual", "--op", "decode_attention", "--configs", "1",
                 env={"COLUMNS": "100"})
    assert narrow.exit_code == 0, narrow.output
    assert "all 2 checks passed" in narrow.stdout
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 100
    assert "decode_attention" in narrow.stdout and "o_proj_residual" in narrow.stdout
    wide = run("check", "--ms", "1", "--op", "o_proj_residual", "--configs", "1", "--wide")
    assert "split_reduce=" in wide.stdout and "x" in wide.stdout  # the whole key, and the shape column


def test_the_timed_table_of_a_gpu_fits_100_columns():
    from rich.console import Console

    rows = [CheckRow("rmsnorm_gate_up_silu", 256, 6144, 1024, "k", 1.2e-3, True, None, 123.4, 234.5, 111.1, 99.9,
                     settings=GEMM),
            CheckRow("decode_attention", 4096008, 16008, 128, "k", 2e-3, True, None, 45.6, 78.9, None, 40.0,
                     settings=ATTN)]
    console = Console(width=100, record=True)
    console.print(_table(rows, "qwen3-0.6b, bfloat16, GPU", timed=True))
    text = console.export_text()
    assert "fma 1x8x128 k2 w4 s3" in text and "group 16sp n64 w4 s2" in text
    assert "decode_attention ctx=4k" in text
    assert "rmsnorm_gate_up_silu" in text  # no name cut
