"""benchmarks/persistent_probe.py: its chain kernel's arithmetic (one stage a launch, as the interpreter
runs it) and the launches arm against the fp32 reference; the persistent mode compiled for sm_90 ahead
of time (its grid barrier and prefetches in the PTX). The timing itself needs a GPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import persistent_probe as pp
from tests.conftest import DEVICE

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


def test_persistent_mode_compiles_for_sm90_with_its_barrier():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    code = (
        "import json, triton\n"
        "from triton.backends.compiler import GPUTarget\n"
        "from triton.compiler import ASTSource\n"
        "from benchmarks import persistent_probe as pp\n"
        "fn = pp.chain_kernel\n"
        "meta = dict(STAGE=-1, BLOCK_D=1024, BLOCK_K=512, BN0=32, BN1=8, BN2=8, BN3=8, LQ=16, LO=32, LG=16,"
        " LD=64, PF=True)\n"
        "sig = {n: ('constexpr' if n in meta else '*i32' if n in ('count_ptr', 'gen_ptr') else '*bf16'"
        " if n.endswith('_ptr') else 'fp32' if n == 'eps' else 'i32') for n in fn.arg_names}\n"
        "src = ASTSource(fn=fn, signature=sig, constexprs={(fn.arg_names.index(k),): v for k, v in meta.items()})\n"
        "ptx = triton.compile(src, target=GPUTarget('cuda', 90, 32), options=dict(num_warps=4)).asm['ptx']\n"
        "print(json.dumps({'atom': ptx.count('atom.'), 'prefetch': ptx.count('prefetch.global.L2'),"
        " 'bar': ptx.count('bar.sync')}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["atom"] >= 4 and found["prefetch"] >= 4 and found["bar"] >= 2, found
