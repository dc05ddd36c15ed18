"""Pieces the op modules share: input checks (ValueError naming the bad value), references, inputs."""

from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# The residual streams wider than 16-bit weights (qwen3.model.STREAM_ENV): fp32, and fixed point, int64
# in units of 2^-24 (FIXED_ONE; the kernels' _gemm.FIXED_ONE is this value).
STREAM_DTYPES = (torch.float32, torch.int64)
FIXED_ONE = 2.0**24
STREAM_INPUT_DTYPES = FLOAT_DTYPES + (torch.int64,)
# An integer has no NaN, so the fixed-point stream spells one. A value added to it (an embedding, a
# sublayer's output) that is not finite or not under FIXED_MAX in magnitude sets the element to
# FIXED_NAN, and an element at least FIXED_NAN_AT in magnitude reads back as NaN: a stream that
# overflows or meets a NaN gives NaN logits, as the 16-bit stream would (a NaN, or a value past 2^39,
# cast to int64 would otherwise be an arbitrary integer, and the logits finite garbage). The margins
# keep the sum in range: up to 64 adds under FIXED_MAX (2^52 units each) move a finite value under
# FIXED_NAN_AT by less than 2^58, and FIXED_NAN by less than FIXED_NAN - FIXED_NAN_AT.
FIXED_MAX = 2.0**28
# fp32 values of 2^23 and more are integers, and adding 0.5 to one rounds (to even): the kernels round
# only below it (fixed_point, _gemm._accumulate).
FIXED_EXACT = 2.0**23
FIXED_NAN = 2**61
FIXED_NAN_AT = 2**60


def to_fixed(t: torch.Tensor) -> torch.Tensor:
    """t as a fixed-point stream: int64 in units of 2^-24, rounded to the nearest, ties away from zero
    (as the kernels round: _gemm._accumulate, fixed_point); FIXED_NAN where t is not finite or not
    under FIXED_MAX in magnitude."""
    t = t.float()
    ok = t.abs() < FIXED_MAX  # False for NaN
    v = torch.where(ok, t, 0.0).double() * FIXED_ONE  # exact: fp32 values under 2^28, scaled by 2^24
    fixed = (v + torch.where(v >= 0, 0.5, -0.5)).to(torch.int64)  # the cast truncates toward zero
    return torch.where(ok, fixed, FIXED_NAN)


def add_fixed_(stream: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """stream (fixed point) += t, in place, as the kernels add (_gemm._accumulate): at least FIXED_NAN
    where t is not representable, whatever the stream held."""
    fixed = to_fixed(t)
    return stream.copy_(torch.where(fixed == FIXED_NAN, torch.maximum(stream, fixed), stream + fixed))


def stream_values(t: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A residual stream's values in `dtype`: a fixed-point stream scaled back (NaN where it holds
    FIXED_NAN_AT or more in magnitude), a floating one as it is."""
    if t.dtype != torch.int64:
        return t.to(dtype)
    nan = (t >= FIXED_NAN_AT) | (t <= -FIXED_NAN_AT)
    return torch.where(nan, float("nan"), t.to(dtype) / FIXED_ONE)

# Relative-error tolerance of a fused output against the fp32 (here fp64) reference, per dtype.
TOLERANCE = {torch.bfloat16: 1e-2, torch.float16: 5e-3, torch.float32: 1e-4}


def check_matrix(name: str, t, *, rows: int | None = None, cols: int | None = None, like=None,
                 dtypes: tuple = FLOAT_DTYPES) -> None:
    """A 2-D, contiguous tensor of one of `dtypes` (floating) with the given sizes, on `like`'s device and dtype."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(t.shape)}")
    if t.dtype not in dtypes:
        raise ValueError(f"{name} has dtype {t.dtype}; expected one of {dtypes}")
    if rows is not None and t.shape[0] != rows:
        raise ValueError(f"{name} has {t.shape[0]} rows, expected {rows} (shape {tuple(t.shape)})")
    if cols is not None and t.shape[1] != cols:
        raise ValueError(f"{name} has {t.shape[1]} columns, expected {cols} (shape {tuple(t.shape)})")
    if not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous, got strides {t.stride()}")
    if like is not None:
        _same_place(name, t, like)


def check_vector(name: str, t, *, size: int, like, of: str = "the activation") -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.ndim != 1 or t.shape[0] != size:
        raise ValueError(f"{name} must have shape ({size},), got {tuple(t.shape)}")
    if not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous, got strides {t.stride()}")
    _same_place(name, t, like, of)


def _same_place(name: str, t: torch.Tensor, like: torch.Tensor, of: str = "the activation") -> None:
    if t.dtype != like.dtype:
        raise ValueError(f"{name} has dtype {t.dtype}, but {of} has {like.dtype}")
    if t.device != like.device:
        raise ValueError(f"{name} is on {t.device}, but {of} is on {like.device}")


def check_norm_op(h, norm_w, w, eps) -> None:
    """The inputs of a norm op: h [M, K], norm_w [K] or None (the gain already folded into w, see
    fold_gain), w [N, K], eps > 0. h is in w's dtype, or fp32 where w is 16-bit: the model's fp32
    residual stream, or a fixed-point one (int64: qwen3.model.STREAM_ENV), whose norm ops write their
    output in w's dtype."""
    check_matrix("h", h, dtypes=STREAM_INPUT_DTYPES)
    check_matrix("w", w, cols=h.shape[1])
    check_activation("h", h, w)
    if norm_w is not None:
        check_vector("norm_w", norm_w, size=h.shape[1], like=w, of="the weight")
    check_eps(eps)


def check_activation(name: str, t: torch.Tensor, w: torch.Tensor) -> None:
    """t on w's device, in w's dtype or, as a residual stream, in fp32 or fixed point (int64)."""
    if t.dtype != w.dtype and t.dtype not in STREAM_DTYPES:
        raise ValueError(f"{name} has dtype {t.dtype}, but the weight has {w.dtype} "
                         "(an activation is in the weight's dtype, or a residual stream in fp32 or int64)")
    if t.device != w.device:
        raise ValueError(f"{name} is on {t.device}, but the weight is on {w.device}")


def check_eps(eps) -> None:
    if not isinstance(eps, (int, float)) or not eps > 0:
        raise ValueError(f"eps must be a positive number, got {eps!r}")


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in fp64; NaN or Inf anywhere in `out` gives inf (never passes)."""
    out64 = out.detach().to(torch.float64)
    ref64 = ref.detach().to(device=out.device, dtype=torch.float64)
    if out64.shape != ref64.shape:
        raise ValueError(f"output shape {tuple(out64.shape)} != reference shape {tuple(ref64.shape)}")
    if not torch.isfinite(out64).all():
        return float("inf")
    denom = torch.linalg.vector_norm(ref64).item()
    num = torch.linalg.vector_norm(out64 - ref64).item()
    return num / denom if denom > 0 else num


def rmsnorm_ref(h: torch.Tensor, g: torch.Tensor | None, eps: float) -> torch.Tensor:
    """RMSNorm in fp64: the reference every fused norm is compared with (g None: no gain; h may be a
    fixed-point stream)."""
    h = stream_values(h, torch.float64)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return h if g is None else h * g.to(torch.float64)


def rmsnorm_eager(h: torch.Tensor, g: torch.Tensor | None, eps: float,
                  dtype: torch.dtype | None = None) -> torch.Tensor:
    """RMSNorm as nano-vllm and transformers run it: fp32 statistics, cast back (to `dtype`, default h's:
    the next GEMM's weight dtype where h is an fp32 stream), then the weight (g None: the gain is folded
    into the next GEMM's weight)."""
    dtype = dtype or h.dtype
    h32 = stream_values(h)
    h32 = h32 * torch.rsqrt(h32.pow(2).mean(-1, keepdim=True) + eps)
    return h32.to(dtype) if g is None else h32.to(dtype) * g


def fold_gain(w: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """w [N, K] with column k multiplied by the RMSNorm gain g[k] (in fp32, rounded once to w's
    dtype): rmsnorm(x) * g @ w^T = rmsnorm(x) @ fold_gain(w, g)^T, so a norm op given the folded weight
    and no gain has no gain to load or multiply in its K loop."""
    return (w.float() * g.float()[None, :]).to(w.dtype)


def randn(shape, dtype, device, gen, scale: float = 1.0) -> torch.Tensor:
    """Normal random values drawn in fp32 (bf16 generators differ by device), then cast. On the meta
    device (the compile pool's inputs) an empty tensor: meta holds no values, and torch.randn there
    goes through torch._refs, whose first call imports torch._dynamo (1.2 s here, 4-5 s in each of
    sixteen compile processes at once on an H200 host, before its first compile)."""
    if torch.device(device).type == "meta":
        return torch.empty(shape, dtype=dtype, device="meta")
    return (torch.randn(shape, generator=gen, device=device, dtype=torch.float32) * scale).to(dtype)


def norm_weight(k, dtype, device, gen) -> torch.Tensor:
    """An RMSNorm gain near 1, as trained checkpoints have it, but not constant (empty on meta, as randn)."""
    if torch.device(device).type == "meta":
        return torch.empty((k,), dtype=dtype, device="meta")
    return (1 + 0.1 * torch.randn((k,), generator=gen, device=device, dtype=torch.float32)).to(dtype)


def linear_weight(n, k, dtype, device, gen) -> torch.Tensor:
    """[N, K] with variance 1/K, so outputs stay O(1) at every K."""
    return randn((n, k), dtype, device, gen, scale=k**-0.5)


class poisoned_outputs:
    """Inside this context every torch.empty / empty_like is filled with NaN, so an output element a
    kernel forgets to write shows up as NaN (and fails rel_error) instead of stale memory."""

    def __enter__(self):
        self._empty, self._empty_like = torch.empty, torch.empty_like
        empty, empty_like = self._empty, self._empty_like
        torch.empty = lambda *a, **kw: _nan_fill(empty(*a, **kw))
        torch.empty_like = lambda *a, **kw: _nan_fill(empty_like(*a, **kw))
        return self

    def __exit__(self, *exc):
        torch.empty, torch.empty_like = self._empty, self._empty_like
        return False


def _nan_fill(t: torch.Tensor) -> torch.Tensor:
    return t.fill_(float("nan")) if t.is_floating_point() else t
