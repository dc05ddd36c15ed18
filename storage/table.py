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
                          "median_us": float, "baseline_us": float, "speedup": float,
                          "cublas_us": float, "floor_us": float}, ...]}
      }
    }

cublas_us (the GEMM alone) and floor_us (bytes and flops at the measured peak) are optional: tables
written before they were added still load, and then answer no question about cuBLAS.

Format 2 is format 1 plus decode attention (op "decode_attention"): a table is written as format 2
exactly when it holds decode attention, so a table without it stays format 1, byte for byte, and a
reader of format 1 only refuses one with it by its format ("unsupported format 2") instead of
stumbling on its configs. Its entry has the same form, keyed as the database keys it
(kernel_space.attention_shape): N = heads * 1000 + kv_heads, K = head_dim, and each bucket's
m = context * 1000 + batch. Beside the keys the entry spells them out, and loading checks that they
agree (a table may not leave them out):

    "decode_attention": {"N": 16008, "K": 128, "heads": 16, "kv_heads": 8, "head_dim": 128,
                         "kernel_hash": str,
                         "buckets": [{"m": 4096008, "batch": 8, "context": 4096, "arm": ..., ...}, ...]}

Its buckets carry no cublas_us (it is no GEMM); a fused config has decode attention's keys (SPLITS,
BLOCK_N, pack, combine, num_warps, num_stages, and prep, which tables written before it was a key
leave out: that means prep "separate"). Its buckets may also have the arm "plan" (config {}): the
default plan runs there, because the end-to-end step check found it faster than the tuned config
(storage.steps); such a bucket keeps the times its tuned config measured alone.

Either format may also say, per decode batch, which residual stream the model keeps (qwen3.model
STREAM_ENV's `auto`), as the end-to-end step check decided it (storage.steps): "model" (the weights'
dtype) or "fixed" (fixed point), sorted by batch, looked up by interval like the buckets:

    "stream": [{"batch": 1, "stream": "fixed"}, {"batch": 8, "stream": "model"}]

A table without it (or a batch past its last entry) runs the rule measured before there was a
check: fixed point at batch 1, the model dtype above (default_stream). Readers before it ignore it.

A table may also list the decode batches at which the model folds decode attention's combine into
o_proj (kernel_space.combine_o_proj; qwen3.model FOLD_ENV's `auto`), where the step check measured the
fold faster: batch 1 at most today (the fold's kernel takes one row). Absent: no fold.

    "fold": [1]

Buckets are sorted by m and looked up by interval: the entry for m serves every M above the
previous bucket's m up to m itself; past the last bucket the dispatcher runs the unfused path.
Decode attention's are looked up by interval on the cache's context first, then on the batch
(OpEntry.attention_lookup); past the last bucket the default plan runs. Loading
only parses JSON and checks types and ranges: nothing in a table is executed. Whether an op and its
configs are known to this version is checked by the importer (storage.export), not here: the dispatcher
loads a table from a newer version and falls back per op instead of refusing it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from kernel_space.attention_shape import ATTENTION_OP, decode_heads, decode_m, serving_bucket

FORMAT = 2  # the newest this version writes: 2 with decode attention, else 1 (see the module docstring)
FORMATS = (1, 2)
ATTENTION_FORMAT = 2
ARMS = ("fused", "unfused")
PLAN_ARM = "plan"  # decode attention only: the default plan (see the module docstring)
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
ATTENTION_INT_FIELDS = ("SPLITS", "BLOCK_N", "num_warps", "num_stages")  # a fused decode_attention config
ATTENTION_TEXT_FIELDS = ("pack", "combine")
ATTENTION_OPTIONAL_TEXT_FIELDS = ("prep",)  # absent in tables written before it was a key

# Ranges: sizes and M are 32-bit columns (ks_shapes, ks_studies); a time beyond 1000 s or a
# speedup beyond 10^6 is no measurement. Strings fit their columns (String(64) / String(256)).
MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1
MAX_US = 1e9
MAX_SPEEDUP = 1e6
MAX_NAME = 256
MAX_SHORT = 64
# A table is tens of KB and six levels deep; limits keep a hostile file from costing memory or
# recursion (json's decoder recurses per level: 100,000 '[' was a RecursionError).
MAX_BYTES = 16 * 2**20
MAX_DEPTH = 32
TIMES = ("median_us", "baseline_us", "speedup")
STREAMS = ("model", "fixed")  # the residual streams a table may choose per batch (see the module docstring)
FOLD_BATCHES = (1,)  # the decode batches a table may fold the attention's combine at (one row: combine_o_proj)
OPTIONAL_TIMES = ("cublas_us", "floor_us")


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
    cublas_us: float | None = None
    floor_us: float | None = None

    @property
    def speedup_vs_cublas(self) -> float | None:
        """The cuBLAS GEMM alone over this bucket's time (> 1: faster than cuBLAS); None if unknown."""
        return self.cublas_us / self.median_us if self.cublas_us is not None else None

    def to_dict(self) -> dict:
        out = dict(self.__dict__)
        out["config"] = dict(self.config)
        for key in OPTIONAL_TIMES:  # absent rather than null: what format-1 readers before them saw
            if out[key] is None:
                del out[key]
        return out


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

    def attention_lookup(self, batch: int, context: int) -> tuple[Bucket | None, str]:
        """Decode attention's bucket serving `batch` sequences over a cache of `context` slots: the
        smallest tuned context >= context, and in it the smallest tuned batch >= batch. (None, why)
        past the last context, or past that context's last batch."""
        key, why = serving_bucket([b.m for b in self.buckets], batch, context)
        return (next(b for b in self.buckets if b.m == key), "") if key is not None else (None, why)


@dataclass(frozen=True)
class DispatchTable:
    model: str
    dtype: str
    created: str
    fingerprint: dict
    ops: dict[str, OpEntry]
    stream: tuple[tuple[int, str], ...] = ()  # (batch, "model" | "fixed"), sorted: the step check's choice
    fold: tuple[int, ...] = ()  # decode batches whose step folds the attention's combine into o_proj, sorted

    def folds_at(self, batch: int) -> bool:
        """Whether a decode step of `batch` rows folds decode attention's combine into o_proj."""
        return batch in self.fold

    def stream_at(self, batch: int) -> str:
        """The residual stream a decode step of `batch` rows keeps with this table: the choice of the
        smallest batch >= `batch` the table names, else default_stream's."""
        for bound, stream in self.stream:
            if batch <= bound:
                return stream
        return default_stream(batch)

    def to_dict(self) -> dict:
        data = {
            "format": ATTENTION_FORMAT if ATTENTION_OP in self.ops else 1,
            "created": self.created,
            "model": self.model,
            "dtype": self.dtype,
            "fingerprint": self.fingerprint,
            "ops": {name: _op_dict(name, e) for name, e in self.ops.items()},
        }
        if self.stream:  # absent rather than empty: a table without it stays byte for byte what it was
            data["stream"] = [{"batch": batch, "stream": stream} for batch, stream in self.stream]
        if self.fold:
            data["fold"] = list(self.fold)
        return data


def default_stream(batch: int) -> str:
    """The stream of a batch no step check chose for: fixed point at batch 1, where it
    was faster on an H200 at every model measured (+5.0% at 0.6B, +2.2% at 1.7B, +0.2% at 8B), the
    model dtype above (16% slower at 0.6B batch 8; benchmarks/README.md, twenty-ninth session)."""
    return "fixed" if batch == 1 else "model"


def _op_dict(name: str, entry: OpEntry) -> dict:
    """An op entry as JSON; decode attention's keys spelled out beside them (see the module docstring)."""
    if name != ATTENTION_OP:
        return {"N": entry.n, "K": entry.k, "kernel_hash": entry.kernel_hash,
                "buckets": [b.to_dict() for b in entry.buckets]}
    heads, kv_heads, head_dim = decode_heads(entry.n, entry.k)
    buckets = []
    for b in entry.buckets:
        batch, context = decode_m(b.m)
        buckets.append({"m": b.m, "batch": batch, "context": context,
                        **{key: value for key, value in b.to_dict().items() if key != "m"}})
    return {"N": entry.n, "K": entry.k, "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim,
            "kernel_hash": entry.kernel_hash, "buckets": buckets}


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _need(obj: dict, key: str, kind, path: str):
    if not isinstance(obj, dict):
        raise TableError(path or "(root)", f"expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise TableError(_at(path, key), "missing")
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int in Python; a table with true where a size belongs is malformed.
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise TableError(_at(path, key), f"expected {names}, got {type(value).__name__}")
    return value


def _int(obj: dict, key: str, path: str, lo: int = 1, hi: int = MAX_INT32) -> int:
    value = _need(obj, key, int, path)
    if not lo <= value <= hi:
        raise TableError(_at(path, key), f"must be in [{lo}, {hi}], got {_short(value)}")
    return value


def _text(obj: dict, key: str, path: str, limit: int = MAX_SHORT) -> str:
    value = _need(obj, key, str, path)
    if len(value) > limit:
        raise TableError(_at(path, key), f"longer than {limit} characters ({len(value)})")
    if not value.isprintable():  # a newline or an escape sequence in a name would garble every listing
        raise TableError(_at(path, key), f"holds control characters: {value!r}"[:200])
    return value


def _number(obj: dict, key: str, path: str, hi: float) -> float:
    """A finite positive number up to hi (an int too large for a float is out of range, not a crash)."""
    value = _need(obj, key, (int, float), path)
    if not (0 < value <= hi) or not math.isfinite(value):  # NaN fails every comparison
        raise TableError(_at(path, key), f"must be a finite number in (0, {hi:g}], got {_short(value)}")
    return float(value)


def _optional_number(obj: dict, key: str, path: str, hi: float) -> float | None:
    return None if obj.get(key) is None else _number(obj, key, path, hi)


def _short(value) -> str:
    """A value for a message: a 5,000-digit int is cut, not printed (nor refused by int -> str)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    return repr(value)


def _check_header(data) -> tuple[str, str, str]:
    if not isinstance(data, dict):
        raise TableError("(root)", f"expected a JSON object, got {type(data).__name__}")
    fmt = _need(data, "format", int, "")
    if fmt not in FORMATS:
        raise TableError("format", f"unsupported format {_short(fmt)}; this version reads formats "
                                   f"{', '.join(map(str, FORMATS))}")
    created = _text(data, "created", "")
    model = _text(data, "model", "", MAX_NAME)
    if not model.strip():
        raise TableError("model", "must not be empty")
    dtype = _need(data, "dtype", str, "")
    if dtype not in DTYPES:
        raise TableError("dtype", f"must be one of {DTYPES}, got {dtype[:MAX_SHORT]!r}")
    return created, model, dtype


def _parse_fingerprint(data: dict) -> dict:
    fp = _need(data, "fingerprint", dict, "")
    for key, kind in FINGERPRINT_FIELDS.items():
        if kind is str:
            _text(fp, key, "fingerprint", MAX_NAME if key == "device_name" else MAX_SHORT)
        else:
            _need(fp, key, kind, "fingerprint")
    _int(fp, "sm_count", "fingerprint", lo=0)  # 0 and 0: the CPU's fingerprint (Triton's interpreter)
    _int(fp, "total_memory", "fingerprint", lo=0, hi=MAX_INT64)
    cap = fp["capability"]
    if len(cap) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 100 for v in cap):
        raise TableError("fingerprint.capability", f"expected [major, minor] as two ints, got {cap!r}"[:200])
    for op, h in fp["kernel_hashes"].items():
        if not isinstance(h, str) or len(h) > MAX_SHORT or len(op) > MAX_SHORT:
            raise TableError(f"fingerprint.kernel_hashes.{op[:MAX_SHORT]}", "expected a short str")
    return dict(fp)


def _parse_config(b: dict, arm: str, path: str, op: str) -> dict:
    config = _need(b, "config", dict, path)
    if arm == "fused" and op == ATTENTION_OP:
        for key in ATTENTION_INT_FIELDS:
            _int(config, key, f"{path}.config", hi=MAX_INT32)
        for key in ATTENTION_TEXT_FIELDS:
            _text(config, key, f"{path}.config")
        for key in ATTENTION_OPTIONAL_TEXT_FIELDS:
            if key in config:
                _text(config, key, f"{path}.config")
    elif arm == "fused":
        for key in CONFIG_INT_FIELDS:
            _int(config, key, f"{path}.config", hi=MAX_INT32)
        path_kind = _need(config, "path", str, f"{path}.config")
        if path_kind not in ("dot", "fma"):
            raise TableError(f"{path}.config.path", f"must be 'dot' or 'fma', got {path_kind[:MAX_SHORT]!r}")
    return dict(config)


def _parse_bucket(b, path: str, op: str) -> Bucket:
    m = _int(b, "m", path)
    arm = _need(b, "arm", str, path)
    arms = (*ARMS, PLAN_ARM) if op == ATTENTION_OP else ARMS
    if arm not in arms:
        raise TableError(f"{path}.arm", f"must be one of {arms}, got {arm[:MAX_SHORT]!r}")
    config = _parse_config(b, arm, path, op)
    times = [_number(b, key, path, MAX_SPEEDUP if key == "speedup" else MAX_US) for key in TIMES]
    extra = [_optional_number(b, key, path, MAX_US) for key in OPTIONAL_TIMES]
    return Bucket(m, arm, config, *times, *extra)


def _parse_op(name: str, entry, path: str) -> OpEntry:
    if len(name) > MAX_SHORT:
        raise TableError(f"ops.{name[:MAX_SHORT]}...", f"op name longer than {MAX_SHORT} characters")
    n = _int(entry, "N", path)
    k = _int(entry, "K", path)
    khash = _text(entry, "kernel_hash", path)
    raw_buckets = _need(entry, "buckets", list, path)
    if not raw_buckets:
        raise TableError(f"{path}.buckets", "must not be empty")
    buckets = tuple(_parse_bucket(b, f"{path}.buckets[{i}]", name) for i, b in enumerate(raw_buckets))
    ms = [b.m for b in buckets]
    if ms != sorted(set(ms)):
        raise TableError(f"{path}.buckets", f"m values must be strictly increasing, got {ms}"[:300])
    if name == ATTENTION_OP:
        _check_attention_keys(entry, raw_buckets, path)
    return OpEntry(n, k, khash, buckets)


def _spelled(obj: dict, fields: tuple[str, ...], values: tuple[int, ...], path: str, key_name: str) -> None:
    """The fields that spell out a decode attention key must be there and agree with it."""
    for field, value in zip(fields, values, strict=True):
        given = _int(obj, field, path)
        if given != value:
            raise TableError(_at(path, field), f"is {given}, but {key_name} says {value}")


def _check_attention_keys(entry: dict, raw_buckets: list, path: str) -> None:
    """decode_attention's N, K and every m are keys of kernel_space.attention_shape, spelled out beside them."""
    try:
        geometry = decode_heads(entry["N"], entry["K"])
    except ValueError as exc:
        raise TableError(f"{path}.N", str(exc)) from None
    _spelled(entry, ("heads", "kv_heads", "head_dim"), geometry, path, f"N={entry['N']}, K={entry['K']}")
    for i, b in enumerate(raw_buckets):
        where = f"{path}.buckets[{i}]"
        try:
            batch, context = decode_m(b["m"])
        except ValueError as exc:
            raise TableError(f"{where}.m", str(exc)) from None
        _spelled(b, ("batch", "context"), (batch, context), where, f"m={b['m']}")


def parse_table(data: dict) -> DispatchTable:
    """Check a decoded table and build it; raises TableError naming the first bad field."""
    created, model, dtype = _check_header(data)
    fp = _parse_fingerprint(data)
    ops_raw = _need(data, "ops", dict, "")
    if not ops_raw:
        raise TableError("ops", "must not be empty")
    ops = {name: _parse_op(name, entry, f"ops.{name}") for name, entry in ops_raw.items()}
    if ATTENTION_OP in ops and data["format"] < ATTENTION_FORMAT:
        raise TableError("format", f"a table with {ATTENTION_OP} is format {ATTENTION_FORMAT} (format "
                                   f"{data['format']} predates it)")
    return DispatchTable(model=model, dtype=dtype, created=created, fingerprint=fp, ops=ops,
                         stream=_parse_stream(data), fold=_parse_fold(data))


def _parse_fold(data: dict) -> tuple[int, ...]:
    """The optional "fold" list: decode batches (ints >= 1), strictly increasing, FOLD_BATCHES only."""
    if "fold" not in data:
        return ()
    raw = _need(data, "fold", list, "")
    out: list[int] = []
    for i, batch in enumerate(raw):
        if not isinstance(batch, int) or isinstance(batch, bool) or batch not in FOLD_BATCHES:
            raise TableError(f"fold[{i}]", f"must be one of the batches the fold serves {FOLD_BATCHES}, got "
                                           f"{str(batch)[:MAX_SHORT]!r}")
        if out and batch <= out[-1]:
            raise TableError(f"fold[{i}]", f"must be above the entry before it ({out[-1]}), got {batch}")
        out.append(batch)
    return tuple(out)


def _parse_stream(data: dict) -> tuple[tuple[int, str], ...]:
    """The optional "stream" list: batches strictly increasing, each stream one of STREAMS."""
    if "stream" not in data:
        return ()
    raw = _need(data, "stream", list, "")
    out = []
    for i, entry in enumerate(raw):
        where = f"stream[{i}]"
        batch = _int(entry, "batch", where)
        stream = _need(entry, "stream", str, where)
        if stream not in STREAMS:
            raise TableError(f"{where}.stream", f"must be one of {STREAMS}, got {stream[:MAX_SHORT]!r}")
        if out and batch <= out[-1][0]:
            raise TableError(f"{where}.batch", f"must be above the entry before it ({out[-1][0]}), got {batch}")
        out.append((batch, stream))
    return tuple(out)


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """How deeply the arrays and objects of a JSON text nest (strings skipped), without parsing it."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number a table may hold")


def decode_json(text: str, where: str) -> object:
    """json.loads with the limits above; TableError('(file)', one line) for anything it refuses."""
    if json_depth(text) > MAX_DEPTH:
        raise TableError("(file)", f"{where} nests deeper than {MAX_DEPTH} levels: not a dispatch table")
    try:
        # parse_constant: Python's json reads NaN and Infinity, which are not JSON and no time.
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise TableError("(file)", f"{where} is not JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:  # NaN/Infinity above; an int of over 4,300 digits
        raise TableError("(file)", f"{where} is not a valid table: {str(exc).splitlines()[0][:200]}") from None


def read_table_text(path: Path) -> str:
    """The text of a table file, refusing what is not a regular file or is far too big to be one."""
    try:
        if not path.is_file():
            what = "a folder" if path.is_dir() else "no such file" if not path.exists() else "not a regular file"
            raise TableError("(file)", f"cannot read {path}: {what}")
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise TableError("(file)", f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise TableError("(file)", f"{path} is larger than {MAX_BYTES // 2**20} MiB: not a dispatch table")
    try:
        return raw.decode("utf-8-sig")  # a BOM (some editors write one) is not part of the JSON
    except UnicodeDecodeError:
        raise TableError("(file)", f"{path} is not UTF-8 text: not a dispatch table") from None


def load_table(source: str | Path | dict) -> DispatchTable:
    """Read and check a dispatch table from a JSON file path or an already decoded dict."""
    if isinstance(source, dict):
        return parse_table(source)
    path = Path(source)
    return parse_table(decode_json(read_table_text(path), str(path)))


HARDWARE_FIELDS = ("device_name", "capability", "sm_count", "total_memory")


def merge_tables(tables: list[DispatchTable], created: str) -> DispatchTable:
    """One table from several of one model, dtype and GPU: each op from the last table that has it
    (e.g. decode attention tuned on its own, added to a table of the GEMM ops), the stream choice from
    the last table that has one, and the fold choice from the last table a step check decided (one with
    a stream or a fold choice). The fingerprint is
    the last table's, its kernel hashes those of the ops kept: every op is still checked against the
    code by its own entry's hash when the dispatcher loads it. TableError when the tables disagree on
    model, dtype or hardware (a table's timings hold only on the GPU that measured them)."""
    if not tables:
        raise TableError("(tables)", "nothing to merge")
    first = tables[0]
    ops: dict[str, OpEntry] = {}
    for i, table in enumerate(tables):
        for field, mine, theirs in (("model", table.model, first.model), ("dtype", table.dtype, first.dtype)):
            if mine != theirs:
                raise TableError(f"(table {i + 1}).{field}", f"is {mine!r}, table 1's is {theirs!r}: only tables of "
                                                             "one model and dtype merge")
        for field in HARDWARE_FIELDS:
            if table.fingerprint[field] != first.fingerprint[field]:
                raise TableError(f"(table {i + 1}).fingerprint.{field}",
                                 f"is {_short(table.fingerprint[field])}, table 1's is "
                                 f"{_short(first.fingerprint[field])}: only tables of one GPU merge")
        ops.update(table.ops)
    fingerprint = dict(tables[-1].fingerprint)
    fingerprint["kernel_hashes"] = {op: entry.kernel_hash for op, entry in ops.items()}
    stream = next((t.stream for t in reversed(tables) if t.stream), ())  # the last table that chose one
    fold = next((t.fold for t in reversed(tables) if t.stream or t.fold), ())  # the last step check's choice
    merged = DispatchTable(model=first.model, dtype=first.dtype, created=created, fingerprint=fingerprint, ops=ops,
                           stream=stream, fold=fold)
    return parse_table(merged.to_dict())


def dump_table(table: DispatchTable | dict, path: str | Path | None = None) -> str:
    """Serialize (after checking) a table; writes it to `path` when given. Returns the JSON text."""
    data = table.to_dict() if isinstance(table, DispatchTable) else table
    parse_table(data)
    # allow_nan=False: parse_table refused NaN and inf already; this makes invalid JSON impossible.
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n"
    if path is not None:
        Path(path).write_text(text)
    return text
