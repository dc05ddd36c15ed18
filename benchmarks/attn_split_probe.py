"""Decode attention at batch 1 with many more programs: SPLITS past the space's 64 (96-256), so a
program reads one to four BLOCK_N tiles, as the streaming read of stream_floor_probe.py does best
(8 programs an SM, one 32 KB load each: 94% of the copy bandwidth at 8k slots' bytes, where the plan's
256 programs of 4 tiles reach 66%).

    python3 benchmarks/attn_split_probe.py OUT.json [--cells qwen3-0.6b:1:8192,...] [--top 6]
        [--splits 32,...,256] [--block-n 32,64,128] [--stages 1,2] [--warps 4,8]
        [--combines kernel,last_program] [--kv loop,early]

SPACE's SPLITS values are widened for this process only. Each config's output is compared with the
plan's (max abs difference, bf16), then timed as attn_bench times (cold L2, one graph, median). Prints
every config's time, then the --top fastest of each cell.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._probe import cold_inputs, parse_cell, write_result
from benchmarks.attn_bench import copy_bandwidth, time_graph
from kernel_space import decode_attention as da

WIDE_SPLITS = (32, 48, 64, 96, 128, 192, 256)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--cells", default="qwen3-0.6b:1:8192,qwen3-8b:1:8192,qwen3-0.6b:1:16384,qwen3-0.6b:8:8192")
    p.add_argument("--top", type=int, default=6)
    p.add_argument("--splits", default=",".join(map(str, WIDE_SPLITS)), help="SPLITS values swept")
    p.add_argument("--block-n", default="32,64,128", help="BLOCK_N values swept")
    p.add_argument("--stages", default="1,2", help="num_stages values swept")
    p.add_argument("--warps", default="4,8", help="num_warps values swept")
    p.add_argument("--combines", default="kernel,last_program", help="combine values swept")
    p.add_argument("--kv", default="loop", help="kv values swept (loop, early)")
    args = p.parse_args(argv)
    wide = tuple(map(int, args.splits.split(",")))
    da.SPACE.values["SPLITS"] = da.SPLITS_VALUES = tuple(sorted(set(da.SPLITS_VALUES) | set(wide)))
    bandwidth = copy_bandwidth()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    rows = []
    for cell in args.cells.split(","):
        problem = parse_cell(cell)
        floor = problem.kv_bytes() / bandwidth * 1e6
        inputs = cold_inputs(problem)
        plan = da.attention_plan(problem.batch, problem.heads, problem.kv_heads, problem.head_dim, problem.context,
                                 sms)
        want = da.decode_attention(**inputs[0], config=plan).float()
        configs = [plan]
        for splits, bn, stages, warps, combine, kv in itertools.product(
                wide, map(int, args.block_n.split(",")), map(int, args.stages.split(",")),
                map(int, args.warps.split(",")), args.combines.split(","),
                args.kv.split(",")):
            cfg = {**plan, "SPLITS": splits, "BLOCK_N": bn, "num_stages": stages, "num_warps": warps,
                   "combine": combine, "kv": kv}
            if cfg != plan and not da.check_config(cfg, problem) and not da.redundant_reason(cfg, problem):
                configs.append(cfg)
        cell_rows = []
        for i, cfg in enumerate(configs):
            try:
                diff = (da.decode_attention(**inputs[0], config=cfg).float() - want).abs().max().item()
                us = time_graph(partial(da.decode_attention, config=cfg), inputs)[0]
            except Exception as exc:  # a config that fails to compile or launch: say so, go on
                print(f"{cell} {cfg}: {type(exc).__name__}: {str(exc)[:100]}", flush=True)
                continue
            row = {"cell": cell, "is_plan": i == 0, "config": cfg, "median_us": us, "floor_us": floor,
                   "of_floor": floor / us, "max_abs_diff_vs_plan": diff}
            cell_rows.append(row)
        cell_rows.sort(key=lambda r: r["median_us"])
        plan_row = next(r for r in cell_rows if r["is_plan"])
        print(f"{cell}: plan {plan_row['median_us']:.2f} us ({plan_row['of_floor']:.0%}), {len(cell_rows)} configs",
              flush=True)
        for r in cell_rows[:args.top]:
            cfg = r["config"]
            print(f"  {r['median_us']:6.2f} us ({r['of_floor']:4.0%}) S{cfg['SPLITS']} BN{cfg['BLOCK_N']} "
                  f"s{cfg['num_stages']} w{cfg['num_warps']} {cfg['combine']} kv {cfg.get('kv', 'loop')} "
                  f"diff {r['max_abs_diff_vs_plan']:.2g}",
                  flush=True)
        rows += cell_rows
        del inputs
        torch.cuda.empty_cache()
    write_result(args.out, bandwidth=bandwidth, sms=sms, rows=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
