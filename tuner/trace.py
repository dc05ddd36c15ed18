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


def watch_compiles() -> None:
    """With a trace asked for, add an event for each kernel this process's Triton compiles or loads
    from its cache ("triton compile": the kernel's name, whether the cache had it, the cache key's
    hash, and on a miss the specialization it compiled for), through Triton's compilation listener.
    Whether a benchmarking child compiles what the pool compiled for it shows there."""
    if not os.environ.get(ENV_VAR):
        return
    from triton import knobs

    def listener(*, src, metadata, metadata_group, times, cache_hit) -> None:
        fields = {"kernel": getattr(src, "name", "?"), "hit": bool(cache_hit), "hash": str(metadata.get("hash"))[:16]}
        if not cache_hit:
            fields["attrs"] = str(getattr(src, "attrs", ""))
            fields["signature"] = str(getattr(src, "signature", ""))
            fields["constants"] = str(getattr(src, "constants", ""))
            fields["fn_key"] = str(getattr(getattr(src, "fn", None), "cache_key", ""))[:16]
            fields["options"] = {key: str(value)[:200] for key, value in metadata.items()
                                 if key not in ("hash", "triton_version")}
        event("triton compile", **fields)

    knobs.compilation.listener = listener

