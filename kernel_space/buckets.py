"""M buckets: the batch sizes a table is tuned at, and the interval rule that serves the others."""

from __future__ import annotations

DECODE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # the CUDA-graph capture sizes
PREFILL_BUCKETS = (512, 1024, 2048, 4096)
ALL_BUCKETS = DECODE_BUCKETS + PREFILL_BUCKETS


def bucket_for(m: int, buckets=ALL_BUCKETS) -> int:
    """The bucket whose winner serves M: the smallest bucket >= M, or the last one."""
    if m < 1:
        raise ValueError(f"M must be >= 1, got {m}")
    for b in sorted(buckets):
        if m <= b:
            return b
    return max(buckets)


def parse_buckets(text: str) -> tuple[int, ...]:
    """'decode', 'prefill', 'all', or a comma list like '1,2,4,16'."""
    named = {"decode": DECODE_BUCKETS, "prefill": PREFILL_BUCKETS, "all": ALL_BUCKETS}
    if text in named:
        return named[text]
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"buckets must be decode, prefill, all or a comma list of ints, got {text!r}") from None
    if not values or values[0] < 1:
        raise ValueError(f"buckets must be positive ints, got {text!r}")
    return tuple(values)
