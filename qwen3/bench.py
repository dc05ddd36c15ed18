"""End-to-end decode benchmark: tokens/s with and without a dispatch table, and where a step's time goes.

Random weights from a preset, random prompts; per batch size a prefill, then output_len decode steps
replayed from CUDA graphs (greedy sampling, as a server's step would run it). Both arms run in the
same process on the same weights, one after the other per batch size.

The breakdown times one decode step eagerly with CUDA events around each part. A GPU sleep is
queued first so the host enqueues the whole step before the GPU starts: the events then time the
kernels back to back, not the host's launch gaps (eager launches are slower than the GPU work).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

import torch

from kernel_space.dispatch import Dispatcher
from qwen3.config import Qwen3Config
from qwen3.generate import Generator
from qwen3.loader import random_weights

PARTS = ("qkv + norm", "q/k norm + rope", "attention", "o_proj + residual", "mlp", "lm_head + norm", "other")


@dataclass
class BenchRow:
    """One (arm, batch) measurement. decode_ms: median wall time of one decode step."""

    arm: str
    batch: int
    prefill_ms: float
    decode_ms: float
    tokens_per_s: float
    breakdown_us: dict[str, float] = field(default_factory=dict)  # part -> GPU us of one step
    plan: dict[str, str] = field(default_factory=dict)  # op -> arm the decode graph runs


def run_bench(config: Qwen3Config, batches: list[int], prompt_len: int, output_len: int,
              table: Dispatcher | None = None, breakdown: bool = False, dtype: torch.dtype = torch.bfloat16,
              repeats: int = 3, seed: int = 0, progress=None) -> list[BenchRow]:
    """Rows for arm "baseline" (no table) and, with `table`, arm "table", per batch size.
    progress(text) is told what runs next (capture compiles each bucket's kernels: the slow part)."""
    progress = progress or (lambda text: None)
    if not torch.cuda.is_available():
        raise RuntimeError("the end-to-end benchmark needs a CUDA GPU")
    model = random_weights(config, dtype, "cuda", seed)
    arms = [("baseline", Dispatcher())] + ([("table", table)] if table is not None else [])
    rows = []
    for arm, ops in arms:
        model.set_dispatcher(ops)
        progress(f"{arm}: compiling and capturing decode graphs")
        gen = Generator(model, max_batch=max(batches), max_len=prompt_len + output_len, batch_sizes=batches)
        for batch in batches:
            progress(f"{arm}: batch {batch}")
            row = _bench_batch(gen, arm, batch, prompt_len, output_len, repeats, seed)
            if breakdown:
                progress(f"{arm}: batch {batch} breakdown")
                row.breakdown_us = step_breakdown(model, batch, prompt_len)
            rows.append(row)
        del gen
        torch.cuda.empty_cache()
    return rows


def _bench_batch(gen: Generator, arm: str, batch: int, prompt_len: int, output_len: int, repeats: int,
                 seed: int) -> BenchRow:
    vocab = gen.model.config.vocab_size
    prompts = torch.randint(0, vocab, (batch, prompt_len), generator=torch.Generator().manual_seed(seed)).tolist()
    _decode_run(gen, prompts, min(output_len, 4))  # warm-up: first prefill at this shape, caches
    prefill, decode = [], []
    for _ in range(repeats):
        p_ms, d_ms = _decode_run(gen, prompts, output_len)
        prefill.append(p_ms)
        decode.append(d_ms)
    step_ms = statistics.median(decode) / max(output_len - 1, 1)
    plan = gen.plans.get(min(b for b in gen.buckets if b >= batch), {}) if gen.buckets else {}
    return BenchRow(arm, batch, statistics.median(prefill), step_ms, batch * 1000 / step_ms,
                    plan={op: choice.arm for op, choice in plan.items()})


@torch.inference_mode()
def _decode_run(gen: Generator, prompts, output_len: int) -> tuple[float, float]:
    """(prefill ms, ms of output_len - 1 decode steps), each step sampling greedily from the last."""
    start, mid, end = (torch.cuda.Event(enable_timing=True) for _ in range(3))
    positions = torch.tensor([len(p) for p in prompts], device="cuda")
    torch.cuda.synchronize()
    start.record()
    tokens = gen.prefill(prompts).argmax(-1)
    mid.record()
    for step in range(output_len - 1):
        tokens = gen.decode_step(tokens, positions + step).argmax(-1)
    end.record()
    end.synchronize()
    return start.elapsed_time(mid), mid.elapsed_time(end)


@torch.inference_mode()
def step_breakdown(model, batch: int, position: int, repeats: int = 5) -> dict[str, float]:
    """GPU microseconds of one eager decode step per part (PARTS) and in all ("total"), median over repeats.
    Needs a KV cache of >= batch rows and > position slots (a Generator allocates one)."""
    tokens = torch.zeros((batch, 1), dtype=torch.long, device="cuda")
    positions = torch.full((batch, 1), position, dtype=torch.long, device="cuda")
    timer = _PartTimer(model)
    samples = defaultdict(list)
    with timer:
        for i in range(repeats + 1):
            totals = timer.time_step(lambda: model.compute_logits(model(tokens, positions)))
            if i:  # the first step compiles and warms up
                for part, us in totals.items():
                    samples[part].append(us)
    return {part: statistics.median(samples[part]) for part in (*PARTS, "total")}


class _PartTimer:
    """Records CUDA events around each part of a step: the dispatcher's ops through a wrapper, the
    other parts through forward hooks on their modules. The model's code is not touched."""

    def __init__(self, model):
        self.model = model
        self.events: list[tuple[str, torch.cuda.Event, torch.cuda.Event]] = []
        self.sleep_cycles = 50_000_000

    def __enter__(self):
        self._ops = self.model.ops
        self.model.set_dispatcher(_TimedOps(self._ops, self))
        parts = {"q_norm": "q/k norm + rope", "k_norm": "q/k norm + rope", "rotary_emb": "q/k norm + rope",
                 "attn": "attention"}
        self._handles = []
        for name, module in self.model.named_modules():
            part = parts.get(name.rsplit(".", 1)[-1])
            if name in ("model.norm", "lm_head"):
                part = "lm_head + norm"
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
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        self.events.append((part, start, end))

    def end(self) -> None:
        self.events[-1][2].record()

    def time_step(self, step) -> dict[str, float]:
        """Per part GPU us of one call of step() (and "total"); the sleep grows while the GPU caught up."""
        first, last = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        for _ in range(4):
            self.events = []
            torch.cuda.synchronize()
            torch.cuda._sleep(self.sleep_cycles)
            first.record()
            step()
            last.record()
            # Done when the GPU had not reached the step before the host was through it. (If the host
            # blocked on a full launch queue instead, the GPU had a full queue all along: also fine.)
            if not first.query():
                break
            self.sleep_cycles *= 2
        last.synchronize()
        times = defaultdict(float)
        for part, start, end in self.events:
            times[part] += start.elapsed_time(end) * 1000
        times["total"] = first.elapsed_time(last) * 1000
        times["other"] = times["total"] - sum(times[p] for p in PARTS if p != "other")
        return times


class _TimedOps:
    """A Dispatcher stand-in that times each fusion site, then calls the real one."""

    SITES = {"rmsnorm_qkv": "qkv + norm", "o_proj_residual": "o_proj + residual",
             "rmsnorm_gate_up_silu": "mlp", "down_residual": "mlp"}

    def __init__(self, ops: Dispatcher, timer: _PartTimer):
        self._ops, self._timer = ops, timer

    def __getattr__(self, name):
        real = getattr(self._ops, name)
        part = self.SITES.get(name)
        if part is None:
            return real

        def timed(*args, **kwargs):
            self._timer.begin(part)
            out = real(*args, **kwargs)
            self._timer.end()
            return out

        return timed
