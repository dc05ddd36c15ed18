"""The measuring harness: correct first, then timed the way a captured decode step runs.

- Correctness: fresh random inputs for every check, outputs poisoned with NaN before the run,
  ||out - ref|| / ||ref|| against the fp64 reference for every output, per-dtype tolerance.
- Timing: weights cold in L2 (the launches rotate over R input sets whose weights total >= 4x L2),
  L launches captured in one CUDA graph (no launch overhead), per-launch time = replay time / L,
  median and p20/p80 over >= 10 replays.
- Confirmation: two arms' graphs replayed alternately (A B A B ...), speedup = median of the
  per-pair ratios, so a clock or thermal drift during the run hits both arms alike.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from kernel_space import prefill
from kernel_space._common import TOLERANCE, poisoned_outputs, rel_error
from kernel_space.spec import OpSpec

COLD_L2_FACTOR = 4  # rotate over weights totalling >= 4x L2: nothing is left in L2 from last time
MIN_REPLAYS = 10


@dataclass(frozen=True)
class Timing:
    median_us: float
    p20_us: float
    p80_us: float
    launches: int  # per replay
    replays: int


class IncorrectResult(Exception):
    """The arm ran but its output is wrong (or NaN): the error is in `.error`."""

    def __init__(self, error: float, detail: str):
        self.error = error
        super().__init__(detail)


def _unfused(spec: OpSpec) -> Callable[[dict], tuple]:
    """The unfused arm as the runtime runs it (qwen3.dispatch): from kernel_space.prefill.PREFILL_ROWS
    rows on, that module's path where the site has one, else the op's eager baseline."""
    path = prefill.ARMS.get(spec.name)
    if path is None:
        return spec.unfused

    def run(inputs: dict) -> tuple:
        rows = inputs["h"] if "h" in inputs else inputs["x"]
        return path(inputs) if prefill.serves(rows.shape[0], rows) else spec.unfused(inputs)

    return run


def arm_fn(spec: OpSpec, arm: str, cfg: dict | None) -> Callable[[dict], tuple]:
    """The callable that runs one arm of an op on an inputs dict."""
    if arm == "fused":
        return lambda inputs: spec.fused(inputs, cfg)
    if arm == "unfused":
        return _unfused(spec)
    if arm == "cublas":
        if spec.cublas is None:
            raise ValueError(f"{spec.name} has no cuBLAS arm (it is no GEMM)")
        return spec.cublas
    raise ValueError(f"unknown arm {arm!r}: expected fused, unfused or cublas")


def check_correct(spec: OpSpec, arm: str, cfg, m, n, k, dtype, device, seed: int) -> float:
    """Run an arm on fresh inputs and return its worst relative error over the op's outputs.
    Raises IncorrectResult when it is above the dtype's tolerance (NaN never passes)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    inputs = spec.make_inputs(m, n, k, dtype, device, gen)
    with poisoned_outputs():
        outs = arm_fn(spec, arm, cfg)(inputs)
    refs = spec.reference(inputs)
    if arm == "cublas":  # the GEMM alone computes no op output; it is a timing lower bound only
        return 0.0
    worst = max(rel_error(o, r) for o, r in zip(outs, refs, strict=True))
    if not worst <= TOLERANCE[dtype]:
        raise IncorrectResult(worst, f"rel error {worst:.3g} > tolerance {TOLERANCE[dtype]:.0e}")
    return worst


def l2_bytes(device) -> int:
    """The GPU's L2 size; 0 on the CPU (the interpreter has no cache worth rotating around)."""
    if not (isinstance(device, int) or str(device).startswith("cuda")):
        return 0
    props = torch.cuda.get_device_properties(device)
    return int(getattr(props, "L2_cache_size", 50 * 2**20))


def rotation_inputs(spec: OpSpec, m, n, k, dtype, device, seed: int) -> list[dict]:
    """R independent input sets: the weights (decode attention: the KV caches, filled to the bucket's
    context) of all R total >= COLD_L2_FACTOR x L2 (at least 2)."""
    weight_bytes = spec.cold_bytes(m, n, k, dtype.itemsize)
    copies = max(2, math.ceil(COLD_L2_FACTOR * l2_bytes(device) / weight_bytes))
    gen = torch.Generator(device=device).manual_seed(seed)
    return [spec.make_inputs(m, n, k, dtype, device, gen) for _ in range(copies)]


def capture(fn: Callable[[dict], tuple], rotation: list[dict], min_launches: int = 32):
    """A CUDA graph of L launches of fn cycling through the rotation; returns (graph, L)."""
    launches = len(rotation) * max(1, math.ceil(min_launches / len(rotation)))
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up outside capture: compilation, cuBLAS handles
        for inputs in rotation[:2]:
            fn(inputs)
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(launches):
            fn(rotation[i % len(rotation)])
    torch.cuda.synchronize()
    return graph, launches


def _replay_us(graph, launches: int) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    graph.replay()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1000.0 / launches


def _quantiles(samples: list[float]) -> tuple[float, float, float]:
    s = sorted(samples)
    q = statistics.quantiles(s, n=10, method="inclusive") if len(s) > 1 else [s[0]] * 9
    return statistics.median(s), q[1], q[7]


def time_graph(fn: Callable[[dict], tuple], rotation: list[dict], replays: int = 15) -> Timing:
    """Per-launch time of fn inside a CUDA graph, weights cold in L2: median, p20, p80."""
    graph, launches = capture(fn, rotation)
    _replay_us(graph, launches)  # first replay uploads the graph
    samples = [_replay_us(graph, launches) for _ in range(max(replays, MIN_REPLAYS))]
    del graph
    med, p20, p80 = _quantiles(samples)
    return Timing(med, p20, p80, launches, len(samples))


def time_cpu(fn: Callable[[dict], tuple], rotation: list[dict], reps: int = 1) -> Timing:
    """Wall-clock time per call on the CPU (Triton's interpreter: only for exercising the tuner's
    loop; these numbers say nothing about a GPU, so one call is timed unless reps asks for more: an
    interpreted launch takes 0.05-0.3 s, and a tiny-preset tune made ~50 of them a study)."""
    samples = []
    for i in range(reps):
        t0 = time.perf_counter()
        fn(rotation[i % len(rotation)])
        samples.append((time.perf_counter() - t0) * 1e6)
    return Timing(*_quantiles(samples), 1, len(samples))


def on_gpu(inputs: dict) -> bool:
    """Whether an input set lives on a GPU (its tensors; decode attention's also hold a float scale)."""
    return any(isinstance(t, torch.Tensor) and t.is_cuda for t in inputs.values())


def time_arm(fn, rotation: list[dict]) -> Timing:
    """time_graph on a GPU, time_cpu elsewhere."""
    return time_graph(fn, rotation) if on_gpu(rotation[0]) else time_cpu(fn, rotation)


def paired_speedup(fn_a, fn_b, rotation: list[dict], pairs: int = 15) -> tuple[float, Timing, Timing]:
    """Speedup of A over B from interleaved replays (A B A B ...): median of t_B / t_A per pair."""
    if not on_gpu(rotation[0]):  # the interpreter: one pair (see time_cpu)
        ta, tb = time_cpu(fn_a, rotation), time_cpu(fn_b, rotation)
        return tb.median_us / ta.median_us, ta, tb
    graph_a, la = capture(fn_a, rotation)
    graph_b, lb = capture(fn_b, rotation)
    _replay_us(graph_a, la), _replay_us(graph_b, lb)
    ta, tb = [], []
    for _ in range(max(pairs, MIN_REPLAYS)):
        ta.append(_replay_us(graph_a, la))
        tb.append(_replay_us(graph_b, lb))
    ratios = [b / a for a, b in zip(ta, tb, strict=True)]
    timings = [Timing(*_quantiles(t), launches, len(t)) for t, launches in ((ta, la), (tb, lb))]
    return statistics.median(ratios), timings[0], timings[1]


def io_bytes(spec: OpSpec, m, n, k, dtype, device) -> int:
    """Bytes that must move: every input read once and every output written once.
    Counted from one row's worth of real tensors: activations (h, x, residual and the outputs) scale
    with M, the weights and norm gains do not (a norm folded into the weight has no gain: None)."""
    gen = torch.Generator(device=device).manual_seed(0)
    one_row = spec.make_inputs(1, n, k, dtype, device, gen)
    total = sum(t.numel() * t.element_size() * (m if name in ("h", "x", "residual") else 1)
                for name, t in one_row.items() if t is not None)
    return total + m * sum(o.numel() * dtype.itemsize for o in spec.unfused(one_row))


def floor_us(spec: OpSpec, m, n, k, dtype, device, bandwidth: float, flop_rate: float) -> float:
    """max(bytes / copy bandwidth, flops / matmul rate), in microseconds. Decode attention counts its
    K and V caches at the bucket's full context, q and the output (AttentionOpSpec.traffic)."""
    if spec.kind == "attention":
        bytes_moved, flops = spec.traffic(m, n, k, dtype.itemsize)
    else:
        bytes_moved, flops = io_bytes(spec, m, n, k, dtype, device), 2.0 * m * n * k
    return 1e6 * max(bytes_moved / bandwidth, flops / flop_rate)


def measure_copy_bandwidth(device, nbytes: int = 2**30) -> float:
    """Device-to-device copy, bytes read + written per second (the memory-bound ceiling)."""
    src = torch.empty(nbytes // 2, dtype=torch.bfloat16, device=device).normal_()
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(10):
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return 2 * nbytes / statistics.median(times)


def measure_matmul_rate(device, size: int = 8192) -> float:
    """bf16 dense matmul FLOP/s on random data (the compute-bound ceiling)."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(10):
        start.record()
        a @ b
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return 2 * size**3 / statistics.median(times)
