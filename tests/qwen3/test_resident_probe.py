"""benchmarks/resident_probe.py: its kernels' arithmetic (one stage a launch, as the interpreter runs it)
against persistent_probe's fp32 references, the caches it writes, the persistent mode compiled for sm_90
ahead of time (a release add and acquire loads a stage), and its options. The timing needs a GPU."""

import pytest
import torch

from benchmarks import persistent_probe as pp
from benchmarks import resident_probe as rp
from tests.conftest import DEVICE
from tests.qwen3.test_persistent_probe import _ptx_counts, check_layer_stages


@pytest.mark.parametrize("programs", [1, 3, 8, 70])
def test_chain_stages_match_the_reference(programs):
    # 70 programs: more than any stage's rows, so most own none.
    w = pp.make_weights(48, 32, 64, 40, 2, torch.float32, DEVICE, seed=3)
    h0 = torch.randn(48, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    chain = rp.ResidentChain(w, 32, programs, num_warps=4)
    chain.h.copy_(h0)
    chain.run_stages()
    torch.testing.assert_close(chain.h.float().cpu(), pp.reference(h0, w, 32, 1e-6).cpu(), rtol=1e-4, atol=1e-4)


def test_chain_odd_sizes_and_fp16_match_the_reference():
    w = pp.make_weights(40, 24, 56, 36, 1, torch.float16, DEVICE, seed=4)
    h0 = torch.randn(40, generator=torch.Generator().manual_seed(1)).to(torch.float16).to(DEVICE)
    chain = rp.ResidentChain(w, 24, 5, num_warps=4)
    chain.h.copy_(h0)
    chain.run_stages()
    torch.testing.assert_close(chain.h.float().cpu(), pp.reference(h0, w, 24, 1e-6).cpu(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("programs, pos", [(1, 0), (3, 17), (8, 39)])
def test_layer_stages_match_the_reference_and_write_the_cache(programs, pos):
    check_layer_stages(lambda w: rp.ResidentLayer(w, programs, pos, num_warps=4), pos)


def test_rows_per_program_covers_every_row_once():
    assert rp.rows_per_program(3072, 132) == (24, 32)  # 0.6B's gate and up: 24 rows, a 32-row tile
    assert rp.rows_per_program(4096, 132) == (32, 32)
    assert rp.rows_per_program(1024, 132) == (8, 8)
    assert rp.rows_per_program(5, 8) == (1, 1)


@pytest.mark.parametrize("preload", [rp.PRELOAD_ALL, 0])
def test_persistent_chain_compiles_for_sm90_with_its_barriers(preload):
    meta = dict(STAGE=-1, PRELOAD=preload, KD=64, KO=32, KI=64, BN0=4, BN1=2, BN2=4, BN3=2)
    found = _ptx_counts("resident_chain_kernel", meta, {"cnt_ptr": "*i32"},
                        ("atom.global.gpu.release.add", "ld.global.gpu.acquire"), module="resident_probe")
    # An arrival a stage (four a layer) and its wait, which polls with acquire loads.
    assert found["atom.global.gpu.release.add"] >= 4 and found["ld.global.gpu.acquire"] >= 4, found


def test_persistent_layer_compiles_for_sm90_with_its_barriers():
    meta = dict(STAGE=-1, PRELOAD=19, H=4, KV=2, HD=16, HP=16, HC=2, CS=4, BLOCK_ATT=16, KD=64, KO=64, KI=64,
                BN0=4, BN1=2, BN2=4, BN3=2)
    kinds = {"part_ptr": "*fp32", "ml_ptr": "*fp32", "cos_ptr": "*fp32", "sin_ptr": "*fp32",
             "attn_count_ptr": "*i32", "cnt_ptr": "*i32", "pos_ptr": "*i64"}
    found = _ptx_counts("resident_layer_kernel", meta, kinds, ("atom.global.gpu.release.add", "mma"),
                        module="resident_probe")
    assert found["atom.global.gpu.release.add"] >= 5 and found["mma"] >= 1, found


@pytest.mark.parametrize("argv, message", [
    (["--preload", "0,40"], "a mask is 0..31"),
    (["--preload", "all"], "not a comma list of ints"),
    (["--warps", "3"], "num_warps must be one of"),
])
def test_bad_options_are_refused_in_one_line(tmp_path, argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        rp.main([str(tmp_path / "out.json"), *argv])
    assert message in str(exc.value) + capsys.readouterr().err
