"""num_stages changes nothing where a split is one K block (the kernel's ONE_BLOCK variant has no loop to
pipeline) or on the FMA path (Triton pipelines only a tl.dot's loads): stages 1 and 5 compile to the
same PTX for sm_90 (Triton's compiler, no GPU). This is the evidence for OpSpec.redundant's stages
rule (the search offers such a config once); in a tl.dot's K loop the stages build different code."""

import pytest

import kernel_space as ks
from tests.kernel_space.aot_run import aot_report
from tests.kernel_space.aot_stages import CASES


@pytest.fixture(scope="module")
def ptx(once):
    return once("aot_stages", lambda _: aot_report("aot_stages.py"))


def test_stages_build_the_same_kernel_without_a_dot_k_loop(ptx):
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
