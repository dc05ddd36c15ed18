"""Where a kernel lets the next one launch under PDL: after its wait (the default) or before it
(KERNEL_SEARCH_PDL_TRIGGER=early), in the decode step of a table, on one machine.

    python3 benchmarks/pdl_trigger_probe.py OUT.json --model qwen3-0.6b --table T.json --cells 1x256,8x256

First, per cell, the greedy tokens and the last step's logits of both settings (a prefill, then 32 CUDA
graph decode steps): they must be equal bit for bit (the same kernels, only the trigger moves; a
kernel that read or wrote too early would show here). Then decode tok/s of both, rounds alternating
(benchmarks._probe.ab_rounds: bench_cell, CUDA graph, median of 3), and each cell's median ratio.
"""

from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._probe import ab_parser, ab_rounds, ab_summary, cells, table_model, write_result

VAR = "KERNEL_SEARCH_PDL_TRIGGER"
STEPS = 32


@torch.inference_mode()
def greedy_run(model, batch: int, context: int) -> tuple[list[list[int]], torch.Tensor]:
    """(tokens [batch][STEPS + 1], the last step's logits) after a random prompt, CUDA graphs."""
    from qwen3.bench import _prefill, random_prompts, release_kv_cache
    from qwen3.generate import Generator

    gen = Generator(model, max_batch=batch, max_len=context + STEPS + 1, batch_sizes=[batch])
    try:
        prompts = random_prompts(batch, context, model.config.vocab_size, 0, gen.device)
        positions = torch.full((batch,), context, device=prompts.device)
        tokens = _prefill(gen, prompts).argmax(-1)
        out = [tokens]
        for step in range(STEPS - 1):
            tokens = gen.decode_greedy(tokens, positions + step)
            out.append(tokens)
        logits = gen.decode_step(tokens, positions + STEPS - 1).float().cpu()
        out.append(logits.argmax(-1).to(tokens.device))
        return torch.stack(out, 1).tolist(), logits
    finally:
        del gen
        release_kv_cache(model)
        torch.cuda.empty_cache()


def main(argv=None) -> int:
    p = ab_parser(__doc__, rounds=3)
    args = p.parse_args(argv)
    model = table_model(args.model, args.table)
    checks = []
    try:
        for batch, context in cells(args.cells):
            runs = {}
            for value in ("wait", "early"):
                os.environ[VAR] = value
                runs[value] = greedy_run(model, batch, context)
            same_tokens = runs["wait"][0] == runs["early"][0]
            same_logits = torch.equal(runs["wait"][1], runs["early"][1])
            checks.append({"batch": batch, "context": context, "same_tokens": same_tokens,
                           "same_logits": same_logits})
            print(f"{args.model} batch {batch} x {context}: tokens {'equal' if same_tokens else 'DIFFER'}, "
                  f"logits {'equal' if same_logits else 'DIFFER'}", flush=True)
        arms = [(value, partial(os.environ.__setitem__, VAR, value)) for value in ("wait", "early")]
        rows = ab_rounds(model, args.model, args.cells, args.rounds, arms, "trigger", args.output_len)
    finally:
        os.environ.pop(VAR, None)
    summary = ab_summary(args.model, rows, args.cells, "trigger", "wait", "early")
    write_result(args.out, model=args.model, table=str(args.table), checks=checks, rows=rows, summary=summary)
    return 0 if all(c["same_tokens"] and c["same_logits"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
