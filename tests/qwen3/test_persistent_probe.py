"""benchmarks/persistent_probe.py: its chain kernel's arithmetic (one stage a launch, as the interpreter
runs it) and the launches arm against the fp32 reference; the persistent mode compiled for sm_90 ahead
of time (its grid barrier and prefetches in the PTX). The timing itself needs a GPU."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import persistent_probe as pp
from tests.conftest import DEVICE, child_env

ROOT = Path(__file__).resolve().parents[2]


def _weights(layers=2, d=48, heads_dim=32, nqkv=64, inter=40, dtype=torch.float32):
    return pp.make_weights(d, heads_dim, nqkv, inter, layers, dtype, DEVICE, seed=3)


@pytest.mark.parametrize("programs", [1, 3, 8])
def test_stages_match_the_reference(programs):
    w = _weights()
    h0 = torch.randn(48, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    chain = pp.Chain(w, 32, programs, block_k=16)
    chain.h.copy_(h0)
    chain.run_stages()
    want = pp.reference(h0, w, 32, 1e-6)
    torch.testing.assert_close(chain.h.float().cpu(), want.cpu(), rtol=1e-4, atol=1e-4)


def test_odd_sizes_and_fp16_match_the_reference():
    w = _weights(layers=1, d=40, heads_dim=24, nqkv=56, inter=36, dtype=torch.float16)
    h0 = torch.randn(40, generator=torch.Generator().manual_seed(1)).to(torch.float16).to(DEVICE)
    chain = pp.Chain(w, 24, 5, block_k=32)
    chain.h.copy_(h0)
    chain.run_stages()
    want = pp.reference(h0, w, 24, 1e-6)
    torch.testing.assert_close(chain.h.float().cpu(), want.cpu(), rtol=2e-2, atol=2e-2)


def test_launches_arm_matches_the_reference():
    w = _weights(layers=2)
    h0 = torch.randn(48, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    configs = pp._table_configs(None, ("rmsnorm_qkv", "o_proj_residual", "rmsnorm_gate_up_silu", "down_residual"))
    got = pp.launches_arm(w, 32, configs)(h0[None].clone())[0]
    # The fused ops round the norm once (x * r * g), the reference twice: fp32 keeps them close.
    torch.testing.assert_close(got.float().cpu(), pp.reference(h0, w, 32, 1e-6).cpu(), rtol=1e-4, atol=1e-4)


def test_block_n_balances_the_busiest_program():
    assert pp.block_n(1024, 132) == 8  # 128 tiles of 8: one round
    assert pp.block_n(3072, 132) == 8  # 384 tiles of 8 (24 rows at most) beat 192 of 16 (32 rows)
    assert pp.block_n(4096, 132) == 32
    assert pp.block_n(5, 8) == 1
    assert pp.block_n(4096, 132, 16) == 16  # the most rows a tile holds, as the sweep's --block-n caps it


def _ptx_counts(kernel: str, meta: dict, kinds: dict, counts: tuple[str, ...], module: str = "persistent_probe",
                num_warps: int = 4) -> dict:
    """Compile benchmarks.<module>.<kernel> for sm_90 ahead of time (Triton's ptxas, no GPU; a process
    without the interpreter) and count substrings of its PTX. kinds: pointer types other than *bf16."""
    env = child_env("TRITON_INTERPRET")
    code = (
        "import importlib, json, sys, triton\n"
        "from triton.backends.compiler import GPUTarget\n"
        "from triton.compiler import ASTSource\n"
        "kernel, meta, kinds, counts, module, warps = json.loads(sys.argv[1])\n"
        "fn = getattr(importlib.import_module('benchmarks.' + module), kernel)\n"
        "sig = {n: ('constexpr' if n in meta else kinds.get(n, '*bf16') if n.endswith('_ptr') else 'fp32'"
        " if n in ('eps', 'qk_scale') else 'i32') for n in fn.arg_names}\n"
        "src = ASTSource(fn=fn, signature=sig, constexprs={(fn.arg_names.index(k),): v for k, v in meta.items()})\n"
        "ptx = triton.compile(src, target=GPUTarget('cuda', 90, 32), options=dict(num_warps=warps)).asm['ptx']\n"
        "print(json.dumps({c: ptx.count(c) for c in counts}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, json.dumps([kernel, meta, kinds, counts, module, num_warps])],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_persistent_mode_compiles_for_sm90_with_its_barrier():
    meta = dict(STAGE=-1, BLOCK_D=1024, BLOCK_K=512, BN0=32, BN1=8, BN2=8, BN3=8, LQ=16, LO=32, LG=16, LD=64, PF=True)
    found = _ptx_counts("chain_kernel", meta, {"count_ptr": "*i32", "gen_ptr": "*i32"},
                        ("release.add", "ld.global.gpu.acquire", "prefetch.global.L2"))
    # A barrier a stage: its release, its spin on the generation; and the next stage's prefetch.
    assert found["release.add"] >= 4 and found["ld.global.gpu.acquire"] >= 4, found
    assert found["prefetch.global.L2"] >= 4, found


def _layer_inputs(layers=2, context=40, dtype=torch.float32):
    return pp.make_layer_inputs(d=48, heads=4, kv_heads=2, head_dim=16, inter=40, layers=layers, context=context,
                                dtype=dtype, device=DEVICE, seed=5)


def check_layer_stages(make_layer, pos: int) -> None:
    """A probe's layer kernels, one stage a launch (make_layer(weights) builds it for position pos), give
    the fp32 reference's hidden state and write the new token's key and value into every layer's cache."""
    w = _layer_inputs()
    h0 = torch.randn(48, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    want, kc, vc = pp.layer_reference(h0, w, pos)
    layer = make_layer(w)
    layer.h.copy_(h0)
    layer.run_stages()
    torch.testing.assert_close(layer.h.float().cpu(), want.cpu(), rtol=1e-4, atol=1e-4)
    # The new token's key and value went into every layer's cache, and nothing else moved.
    torch.testing.assert_close(w["kc"].cpu(), kc.cpu(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w["vc"].cpu(), vc.cpu(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("programs, pos", [(1, 0), (3, 17), (8, 39)])
def test_layer_stages_match_the_reference(programs, pos):
    check_layer_stages(lambda w: pp.Layer(w, programs, pos, block_k=16), pos)


def test_layer_splits_fill_the_grid_and_combine():
    w = _layer_inputs(layers=1, context=200)
    layer = pp.Layer(w, programs=8, pos=199, block_k=32)
    assert layer.dims[-1] == 4  # 2 KV heads x 4 splits = 8 items, the last split of each combining
    h0 = torch.randn(48, generator=torch.Generator().manual_seed(4)).to(DEVICE)
    want, _, _ = pp.layer_reference(h0, w, 199)
    layer.h.copy_(h0)
    layer.run_stages()
    torch.testing.assert_close(layer.h.float().cpu(), want.cpu(), rtol=1e-4, atol=1e-4)


def test_layer_launches_arm_matches_the_reference():
    w = _layer_inputs()
    h0 = torch.randn(48, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    want, _, _ = pp.layer_reference(h0, w, 21)
    configs = pp._table_configs(None, ("rmsnorm_qkv", "o_proj_residual", "rmsnorm_gate_up_silu", "down_residual"))
    got = pp.layer_launches_arm(w, 21, configs)(h0[None].clone())[0]
    torch.testing.assert_close(got.float().cpu(), want.cpu(), rtol=1e-4, atol=1e-4)


def test_persistent_layer_compiles_for_sm90_with_its_barriers():
    meta = dict(STAGE=-1, H=16, KV=8, HD=128, HP=16, HC=2, CS=16, BLOCK_ATT=64, BLOCK_D=1024, BLOCK_K=512,
                BN0=32, BN1=8, BN2=8, BN3=8, LQ=16, LO=32, LG=16, LD=64, PF=True)
    kinds = {"part_ptr": "*fp32", "ml_ptr": "*fp32", "cos_ptr": "*fp32", "sin_ptr": "*fp32",
             "attn_count_ptr": "*i32", "count_ptr": "*i32", "gen_ptr": "*i32", "pos_ptr": "*i64"}
    found = _ptx_counts("layer_kernel", meta, kinds, ("release.add", "prefetch.global.L2", "mma"))
    # Five stage barriers a layer (each releases once), the four weight prefetches, attention's tl.dot.
    assert found["release.add"] >= 5 and found["prefetch.global.L2"] >= 4 and found["mma"] >= 1, found


@pytest.mark.parametrize("layer", [False, True])
def test_setup_gives_matching_arms_for_a_preset(layer):
    """What main() builds, on the tiny preset: the launches arm and the persistent arm's runner (a stage
    a launch here) both land on the reference."""
    from types import SimpleNamespace

    from qwen3.config import resolve_model

    args = SimpleNamespace(table=None, layer=layer, context=33)
    w, h0, want, kv_bytes, table, run, factory = pp._setup(args, resolve_model("qwen3-tiny"), DEVICE, torch.float32)
    assert (kv_bytes > 0) == layer and set(table) == set(pp.GEMV_OPS)
    torch.testing.assert_close(run(h0[None].clone())[0].float().cpu(), want.cpu(), rtol=1e-4, atol=1e-4)
    runner = factory(4, 4, 32, True, 4)  # tiles of at most 4 rows: several a program
    runner.h.copy_(h0)
    runner.run_stages()
    torch.testing.assert_close(runner.h.float().cpu(), want.cpu(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("argv, message", [
    (["--block-k", "300"], "BLOCK_K and BLOCK_N must be powers of two"),
    (["--block-n", "12"], "BLOCK_K and BLOCK_N must be powers of two"),
    (["--warps", "3"], "num_warps one of 1, 2, 4, 8, 16"),
    (["--layer", "--context", "0"], "--context must be at least 1"),
])
def test_bad_options_are_refused_in_one_line(tmp_path, argv, message):
    with pytest.raises(SystemExit, match=message):
        pp.main([str(tmp_path / "out.json"), *argv])


def test_a_prefetch_choice_that_is_not_on_or_off_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        pp.main([str(tmp_path / "out.json"), "--prefetch", "on,maybe"])
    assert "maybe in 'on,maybe': choose from on, off" in capsys.readouterr().err


def test_a_list_that_is_not_ints_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        pp.main([str(tmp_path / "out.json"), "--programs", "abc"])
    assert "not a comma list of ints: 'abc'" in capsys.readouterr().err
