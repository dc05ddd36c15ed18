"""A dispatch table with one op's config at one M bucket changed, to time a what-if in the decode step
(tables_ab.py, env_ab.py) before a tune is asked to find it. Never a table to ship.

    python3 benchmarks/table_variant.py IN.json OUT.json --op down_residual --m 1 --set BLOCK_K=1024,SPLIT_K=4

The new config is the bucket's with the --set keys replaced (integers where they parse), and must pass
the op's check at the model's shape (OpSpec.check) or nothing is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernel_space.registry import get_op


def _value(text: str):
    try:
        return int(text)
    except ValueError:
        return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--op", required=True)
    p.add_argument("--m", type=int, required=True, help="the bucket's M")
    p.add_argument("--set", required=True, help="KEY=VALUE, comma separated")
    args = p.parse_args(argv)
    data = json.loads(args.src.read_text())
    entry = data["ops"].get(args.op)
    if entry is None:
        raise SystemExit(f"error: the table has no op {args.op!r} (it has {', '.join(data['ops'])})")
    bucket = next((b for b in entry["buckets"] if b["m"] == args.m), None)
    if bucket is None or bucket.get("arm") != "fused":
        raise SystemExit(f"error: {args.op} has no fused bucket at M = {args.m}")
    changes = dict(pair.split("=", 1) for pair in args.set.split(","))
    config = {**bucket["config"], **{key: _value(value) for key, value in changes.items()}}
    elem_bytes = {"bfloat16": 2, "float16": 2, "float32": 4}[data.get("dtype", "bfloat16")]
    reason = get_op(args.op).check(config, args.m, entry["N"], entry["K"], elem_bytes)
    if reason:
        raise SystemExit(f"error: {args.op} M = {args.m} config {config}: {reason}")
    bucket["config"] = config
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{args.out}: {args.op} M = {args.m} {changes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
