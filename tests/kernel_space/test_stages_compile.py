"""num_stages changes nothing where a split is one K block: the kernel's ONE_BLOCK variant has no loop
to pipeline, so stages 1 and 5 compile to the same PTX for sm_90 (with Triton's own ptxas, no GPU).
This is the evidence for OpSpec.redundant's stages rule (the search offers such a config once); with a
K loop the stages build different code."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import kernel_space as ks

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/kernel_space"))


@pytest.fixture(scope="module")
def ptx():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    out = subprocess.run([sys.executable, str(ROOT / "tests/kernel_space/aot_stages.py")], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_stages_build_the_same_kernel_without_a_k_loop(ptx):
    from aot_stages import CASES

    for name, (op, m, n, k, cfg) in CASES.items():
        full = {"impl": "fused", **cfg, "num_stages": 3}
        spec = ks.get_op(op)
        assert spec.check(full, m, n, k, 2) is None, name
        one, three = ptx[name]
        if name == "k_loop":
            assert spec.redundant(full, m, n, k, 2) is None
            assert one[0] != three[0]  # the GEMM kernel's loop is pipelined: the test can tell them apart
        else:
            assert spec.redundant(full, m, n, k, 2) is not None, name
            assert one == three, name
