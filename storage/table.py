"""The dispatch table: the exported result of a tuning run, as versioned JSON.

Format 1 (every field checked on load; the first error names the field by its path):

    {
      "format": 1,
      "created": "2026-11-24T20:00:00Z",
      "model": "qwen3-0.6b",
      "dtype": "bfloat16",
      "fingerprint": {"device_name": str, "capability": [9, 0], "sm_count": int,
                      "total_memory": int, "driver": str, "cuda": str, "torch": str, "triton": str,
                      "kernel_hashes": {op: str}},
      "ops": {
        op: {"N": int, "K": int, "kernel_hash": str,
             "buckets": [{"m": int, "arm": "fused" | "unfused", "config": {...},
                          "median_us": float, "baseline_us": float, "speedup": float}, ...]}
      }
    }

Buckets are sorted by m and looked up by interval: the entry for m serves every M above the
previous bucket's m up to m itself (past the last bucket the dispatcher runs the unfused path).
Loading only parses JSON and checks types: nothing in a table is executed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

FORMAT = 1
ARMS = ("fused", "unfused")
DTYPES = ("bfloat16", "float16", "float32")
FINGERPRINT_FIELDS = {
    "device_name": str,
    "capability": list,
    "sm_count": int,
    "total_memory": int,
    "driver": str,
    "cuda": str,
    "torch": str,
    "triton": str,
    "kernel_hashes": dict,
}
CONFIG_INT_FIELDS = ("BLOCK_M", "BLOCK_N", "BLOCK_K", "SPLIT_K", "GROUP_M", "num_warps", "num_stages")


class TableError(ValueError):
    """A dispatch table that does not follow the format; `field` is the path of the first bad value."""

    def __init__(self, field: str, problem: str):
        self.field = field
        super().__init__(f"dispatch table field {field!r}: {problem}")


@dataclass(frozen=True)
class Bucket:
    m: int
    arm: str
    config: dict
    median_us: float
    baseline_us: float
    speedup: float


@dataclass(frozen=True)
class OpEntry:
    n: int
    k: int
    kernel_hash: str
    buckets: tuple[Bucket, ...]

    def lookup(self, m: int) -> Bucket:
        """The bucket serving M: the first whose m >= M, else the last."""
        for bucket in self.buckets:
            if m <= bucket.m:
                return bucket
        return self.buckets[-1]


@dataclass(frozen=True)
class DispatchTable:
    model: str
    dtype: str
    created: str
    fingerprint: dict
    ops: dict[str, OpEntry]

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "created": self.created,
            "model": self.model,
            "dtype": self.dtype,
            "fingerprint": self.fingerprint,
            "ops": {
                name: {
                    "N": e.n,
                    "K": e.k,
                    "kernel_hash": e.kernel_hash,
                    "buckets": [b.__dict__.copy() for b in e.buckets],
                }
                for name, e in self.ops.items()
            },
        }


def _need(obj: dict, key: str, kind, path: str):
    if not isinstance(obj, dict):
        raise TableError(path, f"expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise TableError(f"{path}.{key}" if path else key, "missing")
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int in Python; a table with true where a size belongs is malformed.
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise TableError(f"{path}.{key}" if path else key, f"expected {names}, got {type(value).__name__}")
    return value


def parse_table(data: dict) -> DispatchTable:
    """Check a decoded table and build it; raises TableError naming the first bad field."""
    if not isinstance(data, dict):
        raise TableError("(root)", f"expected a JSON object, got {type(data).__name__}")
    fmt = _need(data, "format", int, "")
    if fmt != FORMAT:
        raise TableError("format", f"unsupported format {fmt}; this version reads format {FORMAT}")
    created = _need(data, "created", str, "")
    model = _need(data, "model", str, "")
    dtype = _need(data, "dtype", str, "")
    if dtype not in DTYPES:
        raise TableError("dtype", f"must be one of {DTYPES}, got {dtype!r}")
    fp = _need(data, "fingerprint", dict, "")
    for key, kind in FINGERPRINT_FIELDS.items():
        _need(fp, key, kind, "fingerprint")
    for op, h in fp["kernel_hashes"].items():
        if not isinstance(h, str):
            raise TableError(f"fingerprint.kernel_hashes.{op}", "expected str")
    ops_raw = _need(data, "ops", dict, "")
    ops = {}
    for name, entry in ops_raw.items():
        path = f"ops.{name}"
        n = _need(entry, "N", int, path)
        k = _need(entry, "K", int, path)
        if n <= 0 or k <= 0:
            raise TableError(f"{path}.N" if n <= 0 else f"{path}.K", "must be positive")
        khash = _need(entry, "kernel_hash", str, path)
        raw_buckets = _need(entry, "buckets", list, path)
        if not raw_buckets:
            raise TableError(f"{path}.buckets", "must not be empty")
        buckets = []
        for i, b in enumerate(raw_buckets):
            bpath = f"{path}.buckets[{i}]"
            m = _need(b, "m", int, bpath)
            if m <= 0:
                raise TableError(f"{bpath}.m", "must be positive")
            arm = _need(b, "arm", str, bpath)
            if arm not in ARMS:
                raise TableError(f"{bpath}.arm", f"must be one of {ARMS}, got {arm!r}")
            config = _need(b, "config", dict, bpath)
            if arm == "fused":
                for key in CONFIG_INT_FIELDS:
                    value = _need(config, key, int, f"{bpath}.config")
                    if value <= 0:
                        raise TableError(f"{bpath}.config.{key}", "must be positive")
                path_kind = _need(config, "path", str, f"{bpath}.config")
                if path_kind not in ("dot", "fma"):
                    raise TableError(f"{bpath}.config.path", f"must be 'dot' or 'fma', got {path_kind!r}")
            nums = [float(_need(b, key, (int, float), bpath)) for key in ("median_us", "baseline_us", "speedup")]
            buckets.append(Bucket(m, arm, dict(config), *nums))
        ms = [b.m for b in buckets]
        if ms != sorted(set(ms)):
            raise TableError(f"{path}.buckets", f"m values must be strictly increasing, got {ms}")
        ops[name] = OpEntry(n, k, khash, tuple(buckets))
    return DispatchTable(model=model, dtype=dtype, created=created, fingerprint=dict(fp), ops=ops)


def load_table(source: str | Path | dict) -> DispatchTable:
    """Read and check a dispatch table from a JSON file path or an already decoded dict."""
    if isinstance(source, dict):
        return parse_table(source)
    path = Path(source)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TableError("(file)", f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TableError("(file)", f"{path} is not JSON: {exc}") from None
    return parse_table(data)


def dump_table(table: DispatchTable | dict, path: str | Path | None = None) -> str:
    """Serialize (after checking) a table; writes it to `path` when given. Returns the JSON text."""
    data = table.to_dict() if isinstance(table, DispatchTable) else table
    parse_table(data)
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    if path is not None:
        Path(path).write_text(text)
    return text
