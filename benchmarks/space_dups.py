"""Count, in a tune's database, the fused GEMM configs measured again as a kernel already timed in the same
study: configs that differ only in num_stages where each split is one K block or on the FMA path (the same
PTX), or only in GROUP_M on one row block (OpSpec.redundant). Decode attention's studies are left out.

    python3 benchmarks/space_dups.py tune.db [more.db ...]
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernel_space import get_op


def count(path: str) -> tuple[int, int]:
    """(fused GEMM configs measured, of them a second copy of a kernel timed before in their study)."""
    db = sqlite3.connect(path)
    shapes = {row[0]: row[1:] for row in db.execute("select id, op, n, k from ks_shapes")}
    fused = again = 0
    for study_id, shape_id, m in db.execute("select id, shape_id, m from ks_studies"):
        op, n, k = shapes[shape_id]
        if get_op(op).kind != "linear":
            continue
        seen = set()
        for (text,) in db.execute("select config from ks_trials where study_id = ? and arm = 'fused'", (study_id,)):
            cfg = json.loads(text)
            fused += 1
            key = json.dumps(get_op(op).canonical(cfg, m, n, k), sort_keys=True)
            again += key in seen
            seen.add(key)
    return fused, again


def main() -> int:
    for path in sys.argv[1:]:
        fused, again = count(path)
        print(f"{path}: {fused} fused GEMM configs measured, {again} of them a kernel measured before in its study")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
