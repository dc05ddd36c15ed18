"""The decode step with each layer's o_proj, gate_up and down weights asked into L2 while its attention
runs (kernel_space.l2_prefetch, Qwen3ForCausalLM.set_weight_prefetch), at several byte caps, side by side.

    python3 benchmarks/l2_prefetch_probe.py OUT.json --model qwen3-0.6b --table dispatch.json \\
        --cells 1x256,8x256,1x2048 --mb 0,8,16,32

Why: at short context and small batch, decode attention reads little (0.6B batch 1 x 256: 0.5 MB of K/V
a layer) and the memory bus idles through it, while the three GEMMs after it stream 23 MB whose short
streams each pay a ramp. Per cell every cap runs in one order, then the reverse (A B C C B A on one
model), each a qwen3.bench.bench_cell (CUDA graph, median of 3 runs of 64 decode steps); a cap's time
is the mean of its two. Before timing, the greedy tokens and the last logits of 8 decode steps with the
largest cap are checked to be bitwise those without prefetch (a hint changes no value).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qwen3.bench import bench_cell, first_cell, random_prompts, release_kv_cache
from qwen3.config import resolve_model
from qwen3.dispatch import Dispatcher
from qwen3.generate import Generator
from qwen3.loader import random_weights

OUTPUT_LEN = 64
REPEATS = 3


@torch.inference_mode()
def greedy(model, batch: int, context: int, steps: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy tokens [batch, steps] and the last step's logits, after a random prompt of `context` tokens."""
    gen = Generator(model, max_batch=batch, max_len=context + steps + 1, batch_sizes=[batch])
    try:
        prompts = random_prompts(batch, context, model.config.vocab_size, 0, gen.device)
        tokens = gen.prefill_rows(prompts, 0).argmax(-1)
        positions = torch.full((batch,), context, device=gen.device)
        out = []
        for step in range(steps):
            logits = gen.decode_step(tokens, positions + step)
            tokens = logits.argmax(-1)
            out.append(tokens)
        return torch.stack(out, 1), logits
    finally:
        del gen
        release_kv_cache(model)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--model", default="qwen3-0.6b")
    p.add_argument("--table", type=Path, default=None, help="dispatch table (default: unfused)")
    p.add_argument("--cells", default="1x256,8x256,1x2048", help="BATCHxCONTEXT,...")
    p.add_argument("--mb", default="0,8,16,32", help="prefetch caps in MB a layer (0: off)")
    args = p.parse_args()
    config = resolve_model(args.model)
    cells = [tuple(int(v) for v in c.split("x")) for c in args.cells.split(",")]
    caps = [int(float(v) * 2**20) for v in args.mb.split(",")]
    model = random_weights(config, torch.bfloat16, "cuda", 0)
    model.set_dispatcher(Dispatcher(str(args.table)) if args.table else Dispatcher())
    first_cell(model)

    b0, c0 = cells[0]
    model.set_weight_prefetch(0)
    ref_tokens, ref_logits = greedy(model, b0, c0)
    model.set_weight_prefetch(max(caps))
    pf_tokens, pf_logits = greedy(model, b0, c0)
    same = bool(torch.equal(ref_tokens, pf_tokens) and torch.equal(ref_logits, pf_logits))
    print(f"check at batch {b0} x {c0}: tokens and logits with prefetch bitwise the same: {same}", flush=True)

    rows = []
    result = {"gpu": torch.cuda.get_device_name(0), "date": dt.date.today().isoformat(), "model": args.model,
              "table": str(args.table) if args.table else None, "identical_with_prefetch": same,
              "method": "A B C C B A per cell, each qwen3.bench.bench_cell (CUDA graph, median of 3 runs of "
                        f"{OUTPUT_LEN} decode steps); a cap's step_ms the mean of its two", "rows": rows}
    for batch, context in cells:
        times: dict[int, list[float]] = {cap: [] for cap in caps}
        for cap in caps + caps[::-1]:
            model.set_weight_prefetch(cap)
            r = bench_cell(model, f"pf{cap >> 20}", batch, context, OUTPUT_LEN, REPEATS)
            times[cap].append(r.decode_ms)
        base = sum(times[0]) / 2 if 0 in times else None
        for cap in caps:
            ms = sum(times[cap]) / 2
            rows.append({"batch": batch, "context": context, "prefetch_mb": cap / 2**20, "step_ms": round(ms, 4),
                         "runs_ms": [round(t, 4) for t in times[cap]], "tok_s": round(batch * 1000 / ms, 1),
                         "vs_off": round(base / ms, 4) if base else None})
            print(f"batch {batch:3d} x {context:6d}  prefetch {cap / 2**20:5.1f} MB  {ms:.4f} ms  "
                  f"{batch * 1000 / ms:9.1f} tok/s" + (f"  {base / ms:.3f}x" if base else ""), flush=True)
        args.out.write_text(json.dumps(result, indent=1))
    model.set_weight_prefetch(0)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
