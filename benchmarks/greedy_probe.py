"""Greedy decoding with the argmax inside the decode graph (Generator.decode_greedy) against the argmax
of the copied-out logits outside it (decode_step, then argmax: what `bench` ran before), on one
Generator per cell, arms alternating per round. Both arms must produce the same tokens.

    python benchmarks/greedy_probe.py OUT.json --model qwen3-0.6b --table TABLE --cells 1x256,32x2048
"""

from __future__ import annotations

import argparse
import statistics

import torch

from benchmarks._probe import cells, table_args, table_model, write_result
from qwen3.bench import _prefill, random_prompts, release_kv_cache
from qwen3.generate import Generator

OUTPUT_LEN = 64


@torch.inference_mode()
def run(gen: Generator, prompts: torch.Tensor, arm: str) -> tuple[float, list[list[int]]]:
    """(ms a decode step, the tokens) of OUTPUT_LEN - 1 greedy steps after a prefill."""
    positions = torch.full((prompts.shape[0],), prompts.shape[1], device=prompts.device)
    tokens = _prefill(gen, prompts).argmax(-1)
    out = [tokens]
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for step in range(OUTPUT_LEN - 1):
        if arm == "in_graph":
            tokens = gen.decode_greedy(tokens, positions + step)
        else:
            tokens = gen.decode_step(tokens, positions + step).argmax(-1)
        out.append(tokens)
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / (OUTPUT_LEN - 1), torch.stack(out, 1).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    table_args(parser, "qwen3-0.6b", "1x256,8x256,32x256,32x2048")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    model = table_model(args.model, args.table)
    rows = []
    for batch, context in cells(args.cells):
        gen = Generator(model, max_batch=batch, max_len=context + OUTPUT_LEN, batch_sizes=[batch])
        prompts = random_prompts(batch, context, model.config.vocab_size, 0, "cuda")
        run(gen, prompts, "outside")  # warm-up: the prefill graph at this shape
        times, tokens = {"outside": [], "in_graph": []}, {}
        for rnd in range(args.rounds):
            for arm in (("outside", "in_graph") if rnd % 2 == 0 else ("in_graph", "outside")):
                ms, toks = run(gen, prompts, arm)
                times[arm].append(ms)
                tokens.setdefault(arm, toks)
        same = tokens["outside"] == tokens["in_graph"]
        med = {arm: statistics.median(t) for arm, t in times.items()}
        rows.append({"batch": batch, "context": context, "step_ms": times, "median_ms": med, "same_tokens": same,
                     "in_graph_speedup": med["outside"] / med["in_graph"]})
        print(f"{args.model} batch {batch} x {context}: outside {med['outside'] * 1000:.1f} us, in graph "
              f"{med['in_graph'] * 1000:.1f} us a step ({med['outside'] / med['in_graph']:.4f}x), "
              f"tokens {'the same' if same else 'DIFFER'}", flush=True)
        del gen
        release_kv_cache(model)
        torch.cuda.empty_cache()
    write_result(args.out, model=args.model, table=str(args.table), output_len=OUTPUT_LEN, rows=rows)


if __name__ == "__main__":
    main()
