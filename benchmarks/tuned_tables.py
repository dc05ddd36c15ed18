"""The tuned-winner tables of benchmarks/README.md, from a tune database (a committed .db.gz works).

    python benchmarks/tuned_tables.py benchmarks/results/tune_qwen3-0.6b_H100.db.gz --model qwen3-0.6b --grid
    python benchmarks/tuned_tables.py benchmarks/results/tune_qwen3-8b_H100.db.gz --model qwen3-8b
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
from pathlib import Path

from storage import Store
from storage.queries import winners_frame


def open_db(path: Path, tmp: str) -> Store:
    if path.suffix == ".gz":
        plain = Path(tmp) / path.stem
        with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst)
        path = plain
    return Store(f"sqlite:///{path}")


def grid(frame) -> str:
    """ops x M: winner us (paired speedup over unfused), `unfused` where the fused arm lost."""
    ms = sorted(frame["m"].unique())
    lines = ["| op | " + " | ".join(f"M={m}" for m in ms) + " |", "|---|" + "---:|" * len(ms)]
    for op in dict.fromkeys(frame["op"]):
        rows = frame[frame["op"] == op].set_index("m")
        cells = []
        for m in ms:
            if m not in rows.index:
                cells.append("")
                continue
            r = rows.loc[m]
            cells.append(f"{r['median_us']:.1f} (x{r['speedup']:.2f})" + (" unfused" if r["arm"] != "fused" else ""))
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def long(frame) -> str:
    """One row per winner against unfused, cuBLAS alone and the floor."""
    lines = ["| op | M | winner us | unfused us | cuBLAS GEMM us | floor us | winner / floor | cuBLAS / winner |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for _, r in frame.iterrows():
        won = f"{r['median_us']:.1f}" + (" (unfused)" if r["arm"] != "fused" else "")
        ratios = f"{r['median_us'] / r['floor_us']:.2f} | {r['cublas_us'] / r['median_us']:.2f}"
        lines.append(f"| {r['op']} | {r['m']} | {won} | {r['unfused_us']:.1f} | {r['cublas_us']:.1f} | "
                     f"{r['floor_us']:.1f} | {ratios} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--grid", action="store_true", help="ops x M grid instead of one row per winner")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_db(args.db, tmp)
        frame = winners_frame(store, model=args.model)
        store.engine.dispose()
    print(grid(frame) if args.grid else long(frame))


if __name__ == "__main__":
    main()
