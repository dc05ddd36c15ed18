"""Turn committed bench_ops result files into the markdown tables of benchmarks/README.md.

    python benchmarks/make_table.py benchmarks/results/bench_ops_*.json > /tmp/tables.md
"""

from __future__ import annotations

import json
import sys


def table(result: dict) -> str:
    lines = [
        f"### {result['rows'][0]['model']} on {result['gpu']}, {result['date']} "
        f"(copy {result['copy_bandwidth_Bps'] / 1e12:.2f} TB/s, bf16 matmul "
        f"{result['bf16_matmul_flops'] / 1e12:.0f} TFLOP/s; best of {result['samples_per_case']} sampled configs)",
        "",
        "| op | M | floor us | fused us | unfused us | cuBLAS GEMM us | fused/floor | cuBLAS/fused | "
        "paired speedup vs unfused | max rel err (bf16) | configs ok |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        fused = r.get("fused_us")
        lines.append(
            f"| {r['op']} | {r['m']} | {r['floor_us']:.1f} | "
            + (f"{fused:.1f} | " if fused else "n/a | ")
            + f"{r['unfused_us']:.1f} | {r['cublas_us']:.1f} | "
            + (f"{fused / r['floor_us']:.2f} | {r['cublas_us'] / fused:.2f} | "
               f"{r['paired_speedup_vs_unfused']:.2f} | " if fused else "n/a | n/a | n/a | ")
            + f"{r['max_error']:.1e} | {r['configs_ok']}/{r['configs_tried']} |"
        )
    return "\n".join(lines)


def main(paths: list[str]) -> int:
    for path in paths:
        with open(path) as f:
            print(table(json.load(f)))
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
