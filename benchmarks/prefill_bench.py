"""Prefill on the GPU: the old path against the new, in one run, random weights, no table (at prefill
sizes every fusion site runs its unfused path unless a table was tuned there).

    python3 benchmarks/prefill_bench.py OUT.json [--models qwen3-0.6b] [--batches 1,8]
                                                 [--contexts 128,2048,8192] [--repeats 5]

Arms, per (model, batch, context), all prompts of `context` tokens prefilled in one forward:
- `masked_eager`: what the runtime did before: SDPA over the whole KV cache with a boolean mask
  (from_start=False), launched eagerly;
- `causal_eager`: SDPA's causal path over the prompt's slots only (flash on an H100), eagerly;
- `causal_graph`: the same replayed as a CUDA graph (qwen3.generate.Generator.prefill_rows), where
  prompts x padded length <= PREFILL_GRAPH_TOKENS.
Correct first: each arm's last-token logits are compared with `causal_eager`'s (relative L2 error
and the share of equal argmax). Timed: CUDA events around the whole prefill (logits included), after
one warm-up (compiles, captures), median of --repeats.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qwen3.bench import random_prompts, release_kv_cache
from qwen3.config import PRESETS
from qwen3.generate import PREFILL_GRAPH_TOKENS, Generator, padded_length
from qwen3.loader import random_weights

ARMS = ("masked_eager", "causal_eager", "causal_graph")


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


@torch.inference_mode()
def run_arm(gen: Generator, arm: str, prompts: torch.Tensor) -> torch.Tensor:
    n, t = prompts.shape
    if arm == "causal_graph":
        return gen.prefill_rows(prompts)
    positions = torch.arange(t, device=prompts.device).expand(n, t)
    hidden = gen.model(prompts, positions, 0, from_start=arm == "causal_eager")
    return gen.model.compute_logits(hidden.view(n, t, -1)[:, -1].contiguous())


def time_arm(gen: Generator, arm: str, prompts: torch.Tensor, repeats: int) -> tuple[float, torch.Tensor]:
    logits = run_arm(gen, arm, prompts)  # warm-up: compiles, captures
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        run_arm(gen, arm, prompts)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times), logits.float()


def cell(model, batch: int, context: int, repeats: int) -> list[dict]:
    gen = Generator(model, max_batch=batch, max_len=context + 64, batch_sizes=[batch])
    prompts = random_prompts(batch, context, model.config.vocab_size, seed=context + batch, device="cuda")
    rows, ref = [], None
    try:
        for arm in ARMS:
            if arm == "causal_graph" and batch * padded_length(context, context + 64) > PREFILL_GRAPH_TOKENS:
                continue
            ms, logits = time_arm(gen, arm, prompts, repeats)
            ref = logits if ref is None and arm == "causal_eager" else ref
            rows.append({"batch": batch, "context": context, "arm": arm, "prefill_ms": round(ms, 3), "logits": logits})
        for row in rows:
            logits = row.pop("logits")
            row["rel_err"] = round(((logits - ref).norm() / ref.norm()).item(), 5)
            row["argmax_equal"] = round((logits.argmax(-1) == ref.argmax(-1)).float().mean().item(), 3)
        return rows
    finally:
        del gen
        release_kv_cache(model)
        torch.cuda.empty_cache()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--models", default="qwen3-0.6b")
    p.add_argument("--batches", type=int_list, default=[1, 8])
    p.add_argument("--contexts", type=int_list, default=[128, 2048, 8192])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    result = {"gpu": torch.cuda.get_device_name(), "date": dt.date.today().isoformat(), "torch": torch.__version__,
              "command": " ".join(sys.argv), "rows": []}
    for name in args.models.split(","):
        model = random_weights(PRESETS[name], torch.bfloat16, "cuda", seed=0)
        for context in args.contexts:
            for batch in args.batches:
                for row in cell(model, batch, context, args.repeats):
                    result["rows"].append({"model": name, **row})
                    print(f"{name} batch {batch:2d} context {context:5d} {row['arm']:13s} "
                          f"{row['prefill_ms']:9.2f} ms  rel err {row['rel_err']:.1e}  "
                          f"argmax equal {row['argmax_equal']:.2f}", flush=True)
                args.out.write_text(json.dumps(result, indent=1) + "\n")  # kept if a later cell dies
        del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
