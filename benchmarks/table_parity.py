"""A dispatch table's decode logits against the unfused path's, on the GPU: random bf16 weights, a
prefill of random prompts, then CUDA-graph decode steps fed the unfused arm's tokens, both arms on
the same weights. Prints the relative error of the logits per batch (bf16 noise is ~1e-2).

    python3 benchmarks/table_parity.py --model qwen3-0.6b --table dispatch.json [--batches 1,8,32]
        [--prompt 200] [--steps 8] [--json OUT.json]

Why: the runtime's tests check configs of their own; this checks the configs a table ships (or a
restamped table: restamp_table.py) at the model's own shapes. Exit status 1 if an error passes --max."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qwen3.bench import release_kv_cache
from qwen3.config import PRESETS
from qwen3.dispatch import Dispatcher
from qwen3.generate import Generator
from qwen3.loader import random_weights


def rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double(), ref.double()
    return ((out - ref).norm() / ref.norm()).item()


def arm_logits(model, dispatcher, prompts: list, steps: int, tokens: list) -> torch.Tensor:
    """Prefill then `steps` graph decode steps; the first arm run (tokens empty) fills tokens."""
    model.set_dispatcher(dispatcher)
    batch, length = len(prompts), len(prompts[0])
    gen = Generator(model, max_batch=batch, max_len=length + steps + 1, batch_sizes=[batch])
    out = [gen.prefill(prompts)]
    for i in range(steps):
        if len(tokens) <= i:
            tokens.append(out[-1].argmax(-1))
        out.append(gen.decode_step(tokens[i], torch.full((batch,), length + i, device="cuda")))
    result = torch.stack(out).float()
    del gen
    release_kv_cache(model)
    torch.cuda.empty_cache()
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="qwen3-0.6b")
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--prompt", type=int, default=200)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--max", type=float, default=3e-2, help="largest relative error that passes")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    config = PRESETS[args.model]
    model = random_weights(config, torch.bfloat16, "cuda", seed=3)
    rows, ok = [], True
    for batch in [int(b) for b in args.batches.split(",")]:
        g = torch.Generator().manual_seed(batch)
        prompts = torch.randint(0, config.vocab_size, (batch, args.prompt), generator=g).tolist()
        tokens: list = []
        base = arm_logits(model, Dispatcher(), prompts, args.steps, tokens)
        table = arm_logits(model, Dispatcher(args.table), prompts, args.steps, tokens)
        err = [rel(table[i], base[i]) for i in range(len(base))]
        ok &= max(err) <= args.max
        rows.append({"batch": batch, "prefill_rel_err": err[0], "decode_rel_err_max": max(err[1:])})
        print(f"{args.model} batch {batch:2d}: prefill rel err {err[0]:.2e}, decode max {max(err[1:]):.2e} "
              f"({'ok' if max(err) <= args.max else 'TOO LARGE'})", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"gpu": torch.cuda.get_device_name(0), "model": args.model,
                                         "table": str(args.table), "rows": rows}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
