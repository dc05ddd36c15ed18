"""A dispatch table's configs under this tree's kernel hashes, for an A/B of the same configs on
changed kernel code. Never a table to ship: its configs were tuned on the kernels of its hashes.

    python3 benchmarks/restamp_table.py IN.json OUT.json [--ops rmsnorm_qkv,...]

The dispatcher runs a table op's configs only where the op's kernel hash is this code's (else the
baseline, with a warning). After a kernel change that keeps every config valid (the GEMM's first K
block loaded before PDL's wait, say), this writes IN with the hashes of the named ops (default:
every op in IN) set to this code's, so that `bench` and e2e_matrix.py can time the old configs on the
new kernels beside the old kernels (a tree of the previous commit) and say what the code change
alone did. A re-tune then picks the configs that ship."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernel_space import kernel_hash
from storage.table import dump_table, load_table


def restamp(data: dict, ops: list[str]) -> dict:
    for op in ops:
        if op not in data["ops"]:
            raise SystemExit(f"error: the table has no op {op!r} (it has {', '.join(data['ops'])})")
        data["ops"][op]["kernel_hash"] = kernel_hash(op)
        data["fingerprint"]["kernel_hashes"][op] = kernel_hash(op)
    return data


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--ops", help="comma list (default: every op of the table)")
    args = p.parse_args(argv)
    data = json.loads(args.src.read_text())
    ops = args.ops.split(",") if args.ops else list(data["ops"])
    table = load_table(restamp(data, ops))  # checked as any table is
    dump_table(table, args.out)
    print(f"{args.out}: {', '.join(ops)} under this code's kernel hashes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
