"""Do the committed tables' fused configs give the same bits at every launch? Each GEMM op's fused
config at decode buckets, launched `--launches` times on the same inputs (as the model launches it:
PDL and the one-launch split-K where the config says so), every output compared bitwise with the
first. A config whose output changes between launches has a race (issue 10's fused MLP had one on
its tensor-core path); the split-K configs whose last program reduces are the ones at risk.

    python benchmarks/repeat_check.py OUT.json --table TABLE [--table TABLE] --ms 1,8,32
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks._probe import write_result
from kernel_space import OPS, get_op
from storage.table import load_table


def check(table_path: Path, ms: list[int], launches: int) -> list[dict]:
    table = load_table(table_path)
    rows = []
    for op in OPS:
        entry = table.ops.get(op)
        if entry is None:
            continue
        spec = get_op(op)
        for m in ms:
            bucket = entry.lookup(m)
            if bucket.arm != "fused":
                continue
            cfg = {k: bucket.config[k] for k in spec.space.values if k in bucket.config}
            gen = torch.Generator(device="cuda").manual_seed(m)
            inputs = spec.make_inputs(m, entry.n, entry.k, torch.bfloat16, "cuda", gen)
            first = [t.clone() for t in spec.fused(inputs, cfg)]
            differ = 0
            for _ in range(launches - 1):
                out = spec.fused(inputs, cfg)
                differ += any(not torch.equal(a, b) for a, b in zip(out, first, strict=True))
            torch.cuda.synchronize()
            rows.append({"table": table_path.name, "op": op, "m": m, "bucket": bucket.m, "config": cfg,
                         "launches": launches, "differing": differ})
            print(f"{table_path.name} {op} M={m} (bucket {bucket.m}, split {cfg.get('SPLIT_K')} "
                  f"{cfg.get('split_reduce')}): {differ} of {launches - 1} launches differ from the first", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--table", type=Path, action="append", required=True)
    parser.add_argument("--ms", default="1,8,32")
    parser.add_argument("--launches", type=int, default=50)
    args = parser.parse_args()
    ms = [int(x) for x in args.ms.split(",")]
    rows = [row for path in args.table for row in check(path, ms, args.launches)]
    write_result(args.out, rows=rows, differing_configs=sum(r["differing"] > 0 for r in rows))


if __name__ == "__main__":
    main()
