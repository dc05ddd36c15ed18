"""The bench breakdown's reading of a profiler trace (the GPU run itself is in test_gpu.py)."""

from qwen3.bench import _PART, _STEP, PARTS, parts_from_trace


def x(cat, name, ts, dur, **args):
    return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur, "args": args}


def test_kernels_go_to_the_ranges_around_their_launch():
    events = [
        x("user_annotation", f"{_STEP}0", 0, 100),
        x("user_annotation", f"{_PART}mlp", 10, 20),
        x("cuda_runtime", "cudaLaunchKernel", 12, 1, correlation=1),
        x("cuda_driver", "cuLaunchKernelEx", 25, 1, correlation=2),  # a Triton launch
        x("user_annotation", f"{_PART}attention", 40, 10),
        x("cuda_runtime", "cudaLaunchKernel", 41, 1, correlation=3),
        x("cuda_runtime", "cudaLaunchKernel", 60, 1, correlation=4),  # in the step, in no part
        x("user_annotation", f"{_STEP}1", 200, 100),
        x("user_annotation", f"{_PART}mlp", 210, 20),
        x("cuda_runtime", "cudaLaunchKernel", 211, 1, correlation=5),
        x("cuda_runtime", "cudaLaunchKernel", 500, 1, correlation=6),  # outside every step: dropped
        # Kernels run later than their launches, on the GPU's own clock.
        x("kernel", "gemm", 1000, 7.0, correlation=1),
        x("kernel", "triton_gemm", 1010, 3.0, correlation=2),
        x("kernel", "attn", 1020, 2.0, correlation=3),
        x("kernel", "embed", 1030, 1.5, correlation=4),
        x("kernel", "gemm", 1200, 6.0, correlation=5),
        x("kernel", "late", 1300, 9.0, correlation=6),
        # No launch recorded: placed by the GPU-side copy of the ranges.
        x("gpu_user_annotation", f"{_STEP}1", 1190, 50),
        x("gpu_user_annotation", f"{_PART}attention", 1220, 10),
        x("kernel", "orphan", 1225, 4.0, correlation=99),
    ]
    steps = parts_from_trace({"traceEvents": events})
    assert len(steps) == 2
    assert steps[0]["mlp"] == 10.0 and steps[0]["attention"] == 2.0 and steps[0]["other"] == 1.5
    assert steps[0]["kernels"] == 13.5
    assert steps[1]["mlp"] == 6.0 and steps[1]["attention"] == 4.0 and steps[1]["kernels"] == 10.0
    for step in steps:
        assert set(PARTS) <= set(step) and abs(sum(step[p] for p in PARTS) - step["kernels"]) < 1e-9


def test_a_trace_without_kernels_has_no_steps():
    assert parts_from_trace({"traceEvents": [x("user_annotation", f"{_STEP}0", 0, 100)]}) == []
