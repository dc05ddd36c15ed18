"""How a decode attention problem is written in the keys a GEMM op uses: (op, m, n, k, dtype).

Studies, trials, winners, the study queue and the dispatch table all key a problem by an op name, the
M bucket (ks_studies.m) and a shape (ks_shapes.n, .k). Decode attention has four numbers that matter
(batch, context, and the head geometry: heads, kv_heads, head_dim), and the database allows one
shape per (model, op, dtype) (ks_model_shapes), so the context cannot go in the shape: a model runs
attention at many contexts but with one head geometry. So, for op "decode_attention":

    m = context * 1000 + batch        batch in 1..999 (a decode batch: the buckets end at 256)
    n = heads * 1000 + kv_heads       kv_heads in 1..999, heads a multiple of kv_heads
    k = head_dim

Read in decimal, the key says what it is: m = 4096008 is batch 8 over 4,096 cache slots, n = 16008
16 query heads over 8 KV heads. Every value fits the 32-bit columns. decode_m / decode_heads refuse
any number that is not such a key (a batch of 0, a context past the limit, heads that do not group),
so a GEMM-style M (say m = 8) given for decode attention is an error, never read as context 0. The
dispatch table spells the numbers out beside the keys (storage/table.py checks that they agree).

This module imports neither torch nor Triton: storage validates and shows the keys with it.
"""

from __future__ import annotations

ATTENTION_OP = "decode_attention"
STRIDE = 1000  # m = context * STRIDE + batch, n = heads * STRIDE + kv_heads
MAX_KEY = 2**31 - 1  # ks_studies.m, ks_shapes.n and .k are 32-bit columns
MAX_CONTEXT = (MAX_KEY - (STRIDE - 1)) // STRIDE  # 2,147,482 slots: any context a Qwen3 runs

# Cache slots a tune covers by default (up to the model's max_position_embeddings, which closes the
# list, so that every cache the model can allocate has a bucket); the interpreter gets one short one.
CONTEXT_BUCKETS = (256, 1024, 4096, 16384, 32768)
INTERPRETER_CONTEXTS = (64,)
# A (batch, context) bucket is tuned only where the model's whole KV cache (every layer, K and V) for
# batch sequences of context slots fits in 1/KV_CACHE_SHARE of the device memory: a batch the model
# could really run there (its weights and activations need the rest).
KV_CACHE_SHARE = 2
MAX_DECODE_BATCH = 256  # the largest CUDA-graph decode bucket (kernel_space.buckets.DECODE_BUCKETS)


def _positive(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"decode_attention {name} must be a positive int, got {value!r}")
    return value


def encode_m(batch: int, context: int) -> int:
    """The M key of decode attention at `batch` sequences of `context` cache slots."""
    _positive("batch", batch)
    _positive("context", context)
    if batch >= STRIDE:
        raise ValueError(f"decode_attention batch {batch} exceeds {STRIDE - 1} (its M key is context * {STRIDE} "
                         f"+ batch; a decode batch is at most {MAX_DECODE_BATCH})")
    if context > MAX_CONTEXT:
        raise ValueError(f"decode_attention context {context} exceeds {MAX_CONTEXT:,} (the M key is 32-bit)")
    return context * STRIDE + batch


def decode_m(m: int) -> tuple[int, int]:
    """(batch, context) of a decode attention M key; ValueError for a number that is not one."""
    if not isinstance(m, int) or isinstance(m, bool) or not 1 <= m <= MAX_KEY:
        raise ValueError(f"decode_attention M key must be an int in [1, {MAX_KEY}], got {m!r}")
    context, batch = divmod(m, STRIDE)
    if batch == 0 or context == 0:
        raise ValueError(f"decode_attention M key {m} is not context * {STRIDE} + batch with both >= 1 "
                         f"(it reads as batch {batch}, context {context})")
    return batch, context


def encode_heads(heads: int, kv_heads: int, head_dim: int) -> tuple[int, int]:
    """The (N, K) of decode attention for a head geometry."""
    for name, value in (("heads", heads), ("kv_heads", kv_heads), ("head_dim", head_dim)):
        _positive(name, value)
    if kv_heads >= STRIDE:
        raise ValueError(f"decode_attention kv_heads {kv_heads} exceeds {STRIDE - 1} (N is heads * {STRIDE} "
                         "+ kv_heads)")
    if heads % kv_heads:
        raise ValueError(f"decode_attention: {heads} query heads do not split into groups over {kv_heads} KV heads")
    n = heads * STRIDE + kv_heads
    if n > MAX_KEY or head_dim > MAX_KEY:
        raise ValueError(f"decode_attention heads {heads} / head_dim {head_dim} do not fit the 32-bit shape keys")
    return n, head_dim


def decode_heads(n: int, k: int) -> tuple[int, int, int]:
    """(heads, kv_heads, head_dim) of a decode attention shape (N, K); ValueError if it is not one."""
    for name, value in (("N", n), ("K", k)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_KEY:
            raise ValueError(f"decode_attention {name} must be an int in [1, {MAX_KEY}], got {value!r}")
    heads, kv_heads = divmod(n, STRIDE)
    if kv_heads == 0 or heads == 0 or heads % kv_heads:
        raise ValueError(f"decode_attention N {n} is not heads * {STRIDE} + kv_heads with heads a multiple of "
                         f"kv_heads >= 1 (it reads as {heads} heads over {kv_heads} KV heads)")
    return heads, kv_heads, k


def describe(op: str, m: int) -> str:
    """A study's bucket for a person: 'M=8' for a GEMM op, 'M=8 ctx=4096' for decode attention (its
    M is the batch: one token per sequence)."""
    if op != ATTENTION_OP:
        return f"M={m}"
    batch, context = decode_m(m)
    return f"M={batch} ctx={context}"


def context_buckets(max_position: int, contexts=CONTEXT_BUCKETS) -> tuple[int, ...]:
    """The contexts of `contexts` below a model's max_position_embeddings, then that maximum itself."""
    _positive("max_position_embeddings", max_position)
    return tuple(sorted({c for c in contexts if c < max_position} | {max_position}))


def kv_cache_bytes(batch: int, context: int, layers: int, kv_heads: int, head_dim: int, elem_bytes: int) -> int:
    """Bytes of a model's K and V caches, every layer, for batch sequences of context slots."""
    return 2 * layers * batch * context * kv_heads * head_dim * elem_bytes


def attention_buckets(batches, contexts, *, layers: int, kv_heads: int, head_dim: int, elem_bytes: int,
                      memory_bytes: int) -> list[tuple[int, int]]:
    """The (batch, context) pairs a tune covers, batch-major: every decode batch of `batches` (<= 256;
    prefill buckets are no decode batch) at every context of `contexts` whose whole-model KV cache
    fits in 1/KV_CACHE_SHARE of memory_bytes."""
    budget = memory_bytes // KV_CACHE_SHARE
    return [(b, c) for b in sorted(set(batches)) if b <= MAX_DECODE_BATCH for c in sorted(set(contexts))
            if kv_cache_bytes(b, c, layers, kv_heads, head_dim, elem_bytes) <= budget]


def serving_bucket(keys, batch: int, context: int) -> tuple[int | None, str]:
    """Which tuned (batch, context) key serves a problem, by interval on both: the smallest tuned
    context >= the cache's slots, then within it the smallest tuned batch >= batch. Returns (M key,
    '') or (None, why nothing serves it: past the last context, or past that context's last batch).
    keys: the M keys tuned (encode_m values)."""
    by_context: dict[int, list[int]] = {}
    for m in keys:
        b, c = decode_m(m)
        by_context.setdefault(c, []).append(b)
    if not by_context:
        return None, "no decode attention bucket is tuned"
    covering = [c for c in by_context if c >= context]
    if not covering:
        return None, f"a cache of {context} slots is past the last tuned context ({max(by_context)})"
    chosen = min(covering)
    batches = sorted(by_context[chosen])
    serving = next((b for b in batches if b >= batch), None)
    if serving is None:
        return None, f"batch {batch} is past the last batch tuned at context {chosen} ({batches[-1]})"
    return encode_m(serving, chosen), ""


def parse_contexts(text: str) -> tuple[int, ...]:
    """A comma list of cache lengths such as '256,4096' (sorted, repeats dropped)."""
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"contexts must be a comma list of ints, got {text!r}") from None
    if not values or values[0] < 1 or values[-1] > MAX_CONTEXT:
        raise ValueError(f"contexts must be ints in [1, {MAX_CONTEXT:,}], got {text!r}")
    return tuple(values)


def attention_flops(batch: int, context: int, heads: int, head_dim: int) -> int:
    """Multiply-adds x 2 of q K^T and p V for every sequence at the full context."""
    return 4 * batch * heads * context * head_dim
