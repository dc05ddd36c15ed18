"""A target for Nsight Compute: decode attention's plan at one batch-1 cell, launched plainly (no graph)
over caches cold in L2, then stream_floor_probe's best plain read of the same bytes. Run under ncu:

    ncu --kernel-name regex:"decode_attention_kernel|_read_kernel" --launch-skip 4 --launch-count 2 \
        --section SpeedOfLight --section WarpStateStats --section Occupancy \
        python3 benchmarks/attn_ncu_target.py [qwen3-0.6b:1:8192]

Six launches of each, rotating over the cold copies (the first ones compile and warm up)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._probe import cold_inputs, parse_cell
from benchmarks.stream_floor_probe import read_fn
from kernel_space.decode_attention import attention_plan, decode_attention


def main(argv: list[str]) -> int:
    problem = parse_cell(argv[0] if argv else "qwen3-0.6b:1:8192")
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    plan = attention_plan(problem.batch, problem.heads, problem.kv_heads, problem.head_dim, problem.context, sms)
    inputs = cold_inputs(problem)
    for i in range(6):
        decode_attention(**inputs[i % len(inputs)], config=plan)
    torch.cuda.synchronize()
    read = read_fn(1056, 8192, 4, True)
    out = torch.empty(1056, dtype=torch.float32, device="cuda")
    for i in range(6):
        c = inputs[i % len(inputs)]
        read(c["k_cache"], c["v_cache"], out)
    torch.cuda.synchronize()
    print("plan", plan)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
