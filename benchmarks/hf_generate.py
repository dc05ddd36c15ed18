"""Reference point for `kernel-search bench`: transformers' own generate on the same preset.

Random bf16 weights (the same shapes as ours), random prompt of --prompt-len tokens, greedy,
--output-len new tokens, eager (transformers' default dynamic cache, no compile). Prints one JSON
line per batch size: decode tokens/s = batch * new tokens / (generate time - prefill time).

    python benchmarks/hf_generate.py --model qwen3-0.6b --batch 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="qwen3-0.6b")
    parser.add_argument("--batch", default="1")
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json")
    args = parser.parse_args()

    import transformers

    from qwen3.config import resolve_model

    config = resolve_model(args.model)
    torch.manual_seed(0)
    with torch.device(args.device):
        hf_config = transformers.Qwen3Config(**config.to_hf_dict())
        hf_config.dtype = torch.bfloat16
        torch.set_default_dtype(torch.bfloat16)
        model = transformers.Qwen3ForCausalLM(hf_config).eval()  # random init: speed only
        torch.set_default_dtype(torch.float32)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    name = torch.cuda.get_device_name() if args.device == "cuda" else args.device
    rows = []
    for batch in [int(b) for b in args.batch.split(",")]:
        ids = torch.randint(0, config.vocab_size, (batch, args.prompt_len), device=args.device)
        kwargs = dict(do_sample=False, pad_token_id=0, eos_token_id=None)

        def timed(new_tokens: int, ids=ids, kwargs=kwargs) -> float:
            sync()
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)
            sync()
            assert out.shape[1] == args.prompt_len + new_tokens
            return time.perf_counter() - t0

        timed(4)  # warm-up
        prefill = statistics.median(timed(1) for _ in range(args.repeats))
        total = statistics.median(timed(args.output_len) for _ in range(args.repeats))
        step_ms = (total - prefill) * 1000 / (args.output_len - 1)
        row = {"impl": f"transformers {transformers.__version__} generate (eager)", "model": config.name,
               "device": name, "batch": batch, "prompt_len": args.prompt_len,
               "output_len": args.output_len, "prefill_ms": prefill * 1000, "decode_ms": step_ms,
               "tokens_per_s": batch * 1000 / step_ms}
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
