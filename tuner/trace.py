"""A timeline of a worker's processes, to see where its start-up and a study's seconds go.

With KERNEL_SEARCH_TRACE set to a folder, each process of a worker (its main process, the fork server,
the benchmarking child, the compile processes) appends JSON lines to <folder>/trace-<pid>.jsonl:
{"t": Unix time in seconds, "pid": ..., "event": ..., and the event's fields}. The processes inherit
the variable. Unset (the default), event() returns at once and nothing is written.
`benchmarks/trace_summary.py` prints a folder's timeline.
"""

from __future__ import annotations

import json
import os
import time

ENV_VAR = "KERNEL_SEARCH_TRACE"
_FILES: dict[int, object] = {}  # pid -> its open file (a forked process opens its own)


def event(name: str, **fields) -> None:
    """Append one event of this process to the trace, if one is asked for."""
    folder = os.environ.get(ENV_VAR)
    if not folder:
        return
    pid = os.getpid()
    out = _FILES.get(pid)
    if out is None:
        os.makedirs(folder, exist_ok=True)
        out = _FILES[pid] = open(os.path.join(folder, f"trace-{pid}.jsonl"), "a", buffering=1)
    out.write(json.dumps({"t": round(time.time(), 4), "pid": pid, "event": name, **fields}) + "\n")
