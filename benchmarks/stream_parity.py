"""The wide residual streams (KERNEL_SEARCH_STREAM=fp32 and fixed) against the model-dtype one, on the GPU: decode
logits of a bf16 model, unfused and with a table, each stream, against the same weights run in fp32
(the unfused path: the truth a bf16 model approximates), fed the truth's greedy tokens.

    python3 benchmarks/stream_parity.py OUT.json --model qwen3-0.6b --table T.json [--batches 1,8]
        [--prompt 200] [--steps 8]

Per batch and arm: the relative error (||out - truth|| / ||truth||) of the prefill's logits and the
largest of the decode steps', and the fraction of decode rows whose argmax is the truth's. The table arm
with each wide stream runs twice: its split-K programs add into the stream with atomics, so two fp32
runs may differ in the last bits (`repeat_rel_diff`, `repeat_bitwise`); fixed-point ones may not.
Prefills (a prompt of >= 128 rows a forward) keep the bf16 stream either way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.table_parity import arm_logits, rel
from qwen3.config import PRESETS
from qwen3.dispatch import Dispatcher
from qwen3.loader import random_weights
from qwen3.model import STREAM_ENV


def run(model, table, stream: str, prompts, steps, tokens) -> torch.Tensor:
    os.environ[STREAM_ENV] = stream
    try:
        return arm_logits(model, Dispatcher(table) if table else Dispatcher(), prompts, steps, tokens)
    finally:
        os.environ.pop(STREAM_ENV, None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--model", default="qwen3-0.6b", choices=sorted(PRESETS))
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--batches", default="1,8")
    p.add_argument("--prompt", type=int, default=200)
    p.add_argument("--steps", type=int, default=8)
    args = p.parse_args(argv)
    config = PRESETS[args.model]
    model = random_weights(config, torch.bfloat16, "cuda", seed=3)
    truth_model = random_weights(config, torch.bfloat16, "cuda", seed=3).float()
    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        g = torch.Generator().manual_seed(batch)
        prompts = torch.randint(0, config.vocab_size, (batch, args.prompt), generator=g).tolist()
        tokens: list = []
        truth = run(truth_model, None, "model", prompts, args.steps, tokens)
        want = truth[1:].argmax(-1)
        arms = {}
        for name, table, stream in (("unfused", None, "model"), ("unfused_fp32", None, "fp32"),
                                    ("table", args.table, "model"), ("table_fp32", args.table, "fp32"),
                                    ("table_fp32_again", args.table, "fp32"), ("table_fixed", args.table, "fixed"),
                                    ("table_fixed_again", args.table, "fixed")):
            arms[name] = out = run(model, table, stream, prompts, args.steps, tokens)
            err = [rel(out[i], truth[i]) for i in range(len(out))]
            row = {"batch": batch, "prompt": args.prompt, "arm": name, "prefill_rel_err": err[0],
                   "decode_rel_err_max": max(err[1:]),
                   "argmax_agrees": (out[1:].argmax(-1) == want).float().mean().item()}
            if name.endswith("_again"):
                first = arms[name.removesuffix("_again")]
                row["repeat_rel_diff"] = max(rel(out[i], first[i]) for i in range(1, len(out)))
                row["repeat_bitwise"] = bool(torch.equal(out, first))
            rows.append(row)
            print(f"{args.model} batch {batch} {name:17s}: prefill {err[0]:.2e}, decode max {max(err[1:]):.2e}, "
                  f"argmax agrees {row['argmax_agrees']:.3f}"
                  + (f", vs the first run {row['repeat_rel_diff']:.2e} (bitwise {row['repeat_bitwise']})"
                     if "repeat_rel_diff" in row else ""),
                  flush=True)
    args.out.write_text(json.dumps({"gpu": torch.cuda.get_device_name(0), "model": args.model,
                                    "table": str(args.table), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
