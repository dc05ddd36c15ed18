"""End-to-end decode benchmark: tokens/s with and without a dispatch table, and where a step's time goes.

Random weights from a preset, random prompts; per (batch, context) a prefill of `context` tokens a
sequence, then output_len decode steps replayed from a CUDA graph (greedy sampling, as a server's
step would run it). Each cell gets a KV cache of its own size, freed before the next (at 8B a batch of
32 x 32k would need 150 GB). Both arms run in the same process on the same weights.

The breakdown profiles a few eager decode steps (torch.profiler, CUPTI) with a range around each
part and sums the durations of the kernels each part launched. The CUDA-graph step time minus the
kernels' sum is the time between kernels ("gaps": launch latency inside the graph).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import torch

from qwen3.config import Qwen3Config
from qwen3.dispatch import Dispatcher
from qwen3.generate import Generator
from qwen3.loader import random_weights

PARTS = ("qkv + norm", "q/k norm + rope", "attention", "o_proj + residual", "mlp", "lm_head + norm", "other")
# "q/k norm + rope" includes writing K and V to the cache (0 where decode attention does that work itself,
# prep=fused: then it counts in "attention"); "other": embedding and whatever is left.


@dataclass
class BenchRow:
    """One (arm, batch, context) measurement. decode_ms: median wall time of one decode step;
    prefill_ms: median time to prefill all `batch` prompts of `context` tokens."""

    arm: str
    batch: int
    context: int
    prefill_ms: float
    decode_ms: float
    tokens_per_s: float
    breakdown_us: dict[str, float] = field(default_factory=dict)  # part -> GPU kernel us of one step
    plan: dict[str, str] = field(default_factory=dict)  # op -> arm the decode graph runs
    # What decode attention's graph runs: "fused", "unfused" (SDPA) or "plan" (the default plan), and why.
    attention: str = ""


# Tokens per prefill forward at most: a forward's activations grow with its tokens (at 8B the gate/up
# output alone is 48 KB a token, 1.6 GB at 32k), so a batch of long prompts is prefilled a few whole
# sequences at a time; 32k tokens keep every GEMM far past the size where it reaches its peak rate.
PREFILL_TOKENS = 32768


def prefill_groups(batch: int, context: int, max_tokens: int = PREFILL_TOKENS) -> list[tuple[int, int]]:
    """(first row, sequences) of each prefill forward for `batch` prompts of `context` tokens: as many
    whole prompts a forward as fit in max_tokens, at least one."""
    if batch < 1 or context < 1:
        raise ValueError(f"batch and context must be >= 1, got {batch}, {context}")
    per = max(1, max_tokens // context)
    return [(row, min(per, batch - row)) for row in range(0, batch, per)]


def run_bench(config: Qwen3Config, batches: list[int], contexts: list[int], output_len: int,
              table: Dispatcher | None = None, breakdown: bool = False, dtype: torch.dtype = torch.bfloat16,
              repeats: int = 3, seed: int = 0, progress=None) -> list[BenchRow]:
    """Rows for arm "unfused" (no table) and, with `table`, arm "table", per (batch, context): a prefill
    of `context` tokens a sequence, then output_len greedy decode steps.
    progress(text) is told what runs next (capture compiles each bucket's kernels: the slow part)."""
    arms = [("unfused", Dispatcher())] + ([("table", table)] if table is not None else [])
    return bench_arms(config, arms, batches, contexts, output_len, breakdown, dtype, repeats, seed, progress)


def bench_arms(config: Qwen3Config, arms: list[tuple[str, Dispatcher]], batches: list[int], contexts: list[int],
               output_len: int, breakdown: bool = False, dtype: torch.dtype = torch.bfloat16, repeats: int = 3,
               seed: int = 0, progress=None, arm_batches: dict[str, list[int]] | None = None) -> list[BenchRow]:
    """run_bench over any named dispatchers: one row per (arm, batch, context), arm by arm, every arm
    on the same random weights and prompts (what tune's end-to-end check of a table uses). arm_batches:
    the batches of the arms named there, instead of `batches`."""
    progress = progress or (lambda text: None)
    if not torch.cuda.is_available():
        raise RuntimeError("the end-to-end benchmark needs a CUDA GPU")
    model = random_weights(config, dtype, "cuda", seed)
    first_cell(model, seed)
    rows = []
    for arm, ops in arms:
        model.set_dispatcher(ops)
        for context in contexts:
            for batch in (arm_batches or {}).get(arm, batches):
                progress(f"{arm}: batch {batch}, context {context} (capture compiles the kernels)")
                rows.append(bench_cell(model, arm, batch, context, output_len, repeats, seed, breakdown))
    return rows


FIRST_CELL_CONTEXT = 128  # the prompt of first_cell's run (batch 1, 8 tokens decoded, once)


def first_cell(model, seed: int = 0) -> None:
    """Run one short unfused cell and throw it away. A process's first cell is not like the later ones:
    on an H100 the unfused batch-1 step of Qwen3-0.6B ran at 1.75 ms as the first cell of a process and
    at 2.01-2.02 ms in every later one, on a fresh model too (benchmarks/README.md, seventh session;
    the cause is not known), so every measured cell comes after this one."""
    from qwen3.dispatch import Dispatcher

    ops = getattr(model, "ops", None)
    model.set_dispatcher(Dispatcher())
    bench_cell(model, "thrown away", 1, FIRST_CELL_CONTEXT, 8, 1, seed)
    if ops is not None:
        model.set_dispatcher(ops)


def bench_cell(model, arm: str, batch: int, context: int, output_len: int, repeats: int = 3, seed: int = 0,
               breakdown: bool = False) -> BenchRow:
    """One row: the model with its current dispatcher, a KV cache of batch x (context + output_len) and
    a CUDA graph for the batch's bucket, both freed before returning: the next cell's cache gets the
    memory to itself."""
    gen = Generator(model, max_batch=batch, max_len=context + output_len, batch_sizes=[batch])
    try:
        row = _bench_batch(gen, arm, batch, context, output_len, repeats, seed)
        if breakdown:
            try:
                row.breakdown_us = step_breakdown(model, batch, context)
            except RuntimeError as exc:  # the throughput stands without it
                warnings.warn(f"no breakdown for {arm} batch {batch}: {exc}", RuntimeWarning, stacklevel=2)
        return row
    finally:
        del gen
        release_kv_cache(model)
        torch.cuda.empty_cache()


def release_kv_cache(model) -> None:
    """Drop the KV cache that allocate_kv_cache left on the model and its attention layers (it outlives
    the Generator that asked for it), so that the next cache is not allocated beside it."""
    model.kv_cache = None
    for module in model.modules():
        if hasattr(module, "k_cache"):
            module.k_cache = module.v_cache = None


def random_prompts(batch: int, context: int, vocab: int, seed: int, device="cuda") -> torch.Tensor:
    """[batch, context] token ids, the same for every arm of a cell (drawn on the CPU: device-independent)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, context), generator=gen).to(device)


def _bench_batch(gen: Generator, arm: str, batch: int, context: int, output_len: int, repeats: int,
                 seed: int) -> BenchRow:
    prompts = random_prompts(batch, context, gen.model.config.vocab_size, seed, gen.device)
    _decode_run(gen, prompts, min(output_len, 4))  # warm-up: first prefill at this shape, caches
    prefill, decode = [], []
    for _ in range(repeats):
        p_ms, d_ms = _decode_run(gen, prompts, output_len)
        prefill.append(p_ms)
        decode.append(d_ms)
    step_ms = statistics.median(decode) / max(output_len - 1, 1)
    bucket = min(b for b in gen.buckets if b >= batch) if gen.buckets else None
    plan = gen.plans.get(bucket, {})
    attention = gen.attention.get(bucket)
    return BenchRow(arm, batch, context, statistics.median(prefill), step_ms, batch * 1000 / step_ms,
                    plan={op: choice.arm for op, choice in plan.items()},
                    attention=f"{attention.arm}: {attention.reason}" if attention else "")


@torch.inference_mode()
def _prefill(gen: Generator, prompts: torch.Tensor) -> torch.Tensor:
    """Logits of each prompt's last token; prompts [B, T] go into cache rows 0.. by prefill_groups."""
    b, t = prompts.shape
    return torch.cat([gen.prefill_rows(prompts[row:row + n], row) for row, n in prefill_groups(b, t)])


@torch.inference_mode()
def _decode_run(gen: Generator, prompts: torch.Tensor, output_len: int) -> tuple[float, float]:
    """(prefill ms, ms of output_len - 1 decode steps), each step sampling greedily from the last."""
    start, mid, end = (torch.cuda.Event(enable_timing=True) for _ in range(3))
    positions = torch.full((prompts.shape[0],), prompts.shape[1], device=prompts.device)
    torch.cuda.synchronize()
    start.record()
    tokens = _prefill(gen, prompts).argmax(-1)
    mid.record()
    for step in range(output_len - 1):
        tokens = gen.decode_greedy(tokens, positions + step)
    end.record()
    end.synchronize()
    return start.elapsed_time(mid), mid.elapsed_time(end)


@torch.inference_mode()
def step_breakdown(model, batch: int, position: int, repeats: int = 5) -> dict[str, float]:
    """GPU kernel microseconds of one decode step per part (PARTS) and in all ("kernels"), median over
    repeats. The step runs eagerly under torch.profiler with a range around each part; a part's time is
    the summed duration of the kernels launched inside its range (CUPTI), so host launch gaps, which an
    eager step is full of and a CUDA graph is not, are left out. Needs a KV cache of >= batch rows and
    > position slots (a Generator allocates one)."""
    from torch.profiler import ProfilerActivity, profile, record_function

    tokens = torch.zeros((batch, 1), dtype=torch.long, device="cuda")
    positions = torch.full((batch, 1), position, dtype=torch.long, device="cuda")

    def step():
        return model.compute_logits(model(tokens, positions))

    step()  # compiles and warms up outside the profile
    torch.cuda.synchronize()
    with _PartRanges(model), profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for i in range(repeats):
            with record_function(f"{_STEP}{i}"):
                step()
        torch.cuda.synchronize()
    with tempfile.TemporaryDirectory() as tmp:
        prof.export_chrome_trace(f"{tmp}/trace.json")
        with open(f"{tmp}/trace.json") as f:
            trace = json.load(f)
    per_step = parts_from_trace(trace)
    if len(per_step) != repeats:
        cats = Counter(e.get("cat") for e in trace.get("traceEvents", []))
        raise RuntimeError(f"the profile holds kernels of {len(per_step)} of {repeats} decode steps "
                           f"(trace event categories: {dict(cats)})")
    samples = defaultdict(list)
    for parts in per_step:
        for part in (*PARTS, "kernels"):
            samples[part].append(parts[part])
    return {part: statistics.median(values) for part, values in samples.items()}


_STEP, _PART = "kernel-search step ", "kernel-search part: "


def parts_from_trace(trace: dict) -> list[dict[str, float]]:
    """Per profiled step (a _STEP range), kernel microseconds per part and in all ("kernels").

    A kernel belongs to the step and part ranges around the host call that launched it (runtime or
    driver API event of the same correlation id); where no launch is recorded, to the ranges the
    profiler mirrors on the GPU timeline ("gpu_user_annotation") around the kernel itself."""
    events = [e for e in trace.get("traceEvents", []) if e.get("ph") == "X"]
    launches = {e["args"]["correlation"]: e["ts"] for e in events
                if e.get("cat") in ("cuda_runtime", "cuda_driver") and "correlation" in e.get("args", {})}
    ranges = {"user_annotation": [], "gpu_user_annotation": []}
    for e in events:
        if e.get("cat") in ranges and e["name"].startswith((_STEP, _PART)):
            ranges[e["cat"]].append((e["ts"], e["ts"] + e["dur"], e["name"]))

    def around(ts, where):
        """(step index, part) of the innermost ranges holding ts."""
        step, part, part_start = None, "other", -1.0
        for start, end, name in ranges[where]:
            if start <= ts <= end:
                if name.startswith(_STEP):
                    step = int(name[len(_STEP):])
                elif start > part_start:
                    part, part_start = name[len(_PART):], start
        return step, part

    steps: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for e in events:
        if e.get("cat") != "kernel":
            continue
        corr = e.get("args", {}).get("correlation")
        step, part = around(launches[corr], "user_annotation") if corr in launches else (None, "other")
        if step is None:
            step, part = around(e["ts"], "gpu_user_annotation")
        if step is None:
            continue
        steps[step][part] += e["dur"]
        steps[step]["kernels"] += e["dur"]
    return [dict(steps[i]) | {p: steps[i].get(p, 0.0) for p in PARTS} for i in sorted(steps)]


class _PartRanges:
    """Opens a profiler range around each part of a step: the dispatcher's ops through a wrapper, the
    other parts through forward hooks on their modules. The model's code is not touched."""

    MODULES = {"prep": "q/k norm + rope", "attn": "attention"}

    def __init__(self, model):
        self.model = model
        self._open: list = []

    def __enter__(self):
        self._ops = self.model.ops
        self.model.set_dispatcher(_RangedOps(self._ops, self))
        self._handles = []
        for name, module in self.model.named_modules():
            part = self.MODULES.get(name.rsplit(".", 1)[-1])
            if part:
                self._handles.append(module.register_forward_pre_hook(lambda m, a, p=part: self.begin(p)))
                self._handles.append(module.register_forward_hook(lambda m, a, o: self.end()))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self.model.set_dispatcher(self._ops)
        return False

    def begin(self, part: str) -> None:
        from torch.profiler import record_function

        rf = record_function(_PART + part)
        rf.__enter__()
        self._open.append(rf)

    def end(self) -> None:
        self._open.pop().__exit__(None, None, None)


class _RangedOps:
    """A Dispatcher stand-in that opens a part's range around each fusion site, then calls the real one."""

    SITES = {"rmsnorm_qkv": "qkv + norm", "o_proj_residual": "o_proj + residual",
             "rmsnorm_gate_up_silu": "mlp", "down_residual": "mlp", "lm_head": "lm_head + norm"}

    def __init__(self, ops: Dispatcher, ranges: _PartRanges):
        self._ops, self._ranges = ops, ranges

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        real = getattr(self._ops, name)
        part = self.SITES.get(name)
        if part is None:
            return real

        def ranged(*args, **kwargs):
            self._ranges.begin(part)
            try:
                return real(*args, **kwargs)
            finally:
                self._ranges.end()

        return ranged
