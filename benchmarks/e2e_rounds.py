"""Merge the e2e_matrix.py files of an A/B run of two tables into one: DIR/new_*.json rows get the arm
NEW_ARM, DIR/old_*.json rows the arm table_committed, each row its file's name as its round; prints one
line a row. The seventh session's scripts (run_session7_x1*.sh) bench a new table against the
committed one in alternating processes and keep this one file.

    python3 benchmarks/e2e_rounds.py DIR DEST NEW_ARM [--remove]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def merge(folder: Path, new_arm: str) -> dict:
    merged = None
    for f in sorted(folder.glob("new_*.json")) + sorted(folder.glob("old_*.json")):
        d = json.loads(f.read_text())
        merged = merged or {k: v for k, v in d.items() if k != "rows"} | {"rows": []}
        arm = new_arm if f.name.startswith("new") else "table_committed"
        merged["rows"] += [r | {"arm": arm, "round": f.stem} for r in d["rows"]]
    if merged is None:
        raise SystemExit(f"no new_*.json or old_*.json in {folder}")
    return merged


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path)
    p.add_argument("dest", type=Path)
    p.add_argument("new_arm")
    p.add_argument("--remove", action="store_true", help="delete the files merged")
    args = p.parse_args()
    merged = merge(args.folder, args.new_arm)
    args.dest.write_text(json.dumps(merged, indent=1))
    if args.remove:
        for f in [*args.folder.glob("new_*.json"), *args.folder.glob("old_*.json")]:
            f.unlink()
    for r in merged["rows"]:
        print(r["arm"], r["round"], r["batch"], r["context"], r.get("decode_tok_s"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
