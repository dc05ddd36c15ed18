"""What every fused op declares: its shape rule, its search space and how a config is checked.

A config is a plain dict of the space's keys, so it can go into a database row or a dispatch table
as JSON and come back without any code running.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from kernel_space.attention_shape import ATTENTION_OP, decode_heads, decode_m
from kernel_space.geometry import FP32_BYTES, LinearLaunch

# Opt-in shared memory per block on sm_90 (H100/H200). Used when no device is there to ask
# (CPU interpreter runs), so that a config that could never run on the target is still refused.
DEFAULT_SMEM_LIMIT = 232_448

# Device memory assumed when none is there to ask (the H100 80GB's), and the share of it a launch's
# split-K scratch may take. The scratch grows with M: the 8B M = 32 gate_up config at a prefill of
# M = 65,536 asks for 25.8 GB of fp32 partials, a third of the card, to run a decode config untuned.
DEFAULT_DEVICE_MEMORY = 80 * 10**9
SCRATCH_SHARE = 8

# Per-thread fp32 registers the FMA path may spend on its [BLOCK_M, BLOCK_K, BLOCK_N] product.
# Above this the compiler spills to local memory (255 registers is the hard cap per thread).
FMA_REGISTER_BUDGET = 128
# tl.dot's fp32 accumulators per thread (BLOCK_M * BLOCK_N / threads, twice for the gated op's two
# tiles). Past 128 the kernel spills, and ptxas takes minutes on it: on the H100 one such config held
# a 16-config study of the 0.6B gate_up op at M = 256 for 75-98 s, every other study taking 3-12 s. No
# committed winner holds more than 32.
DOT_ACCUMULATOR_BUDGET = 128

IMPLS = ("fused", "unfused")
PATHS = ("dot", "fma")


@dataclass(frozen=True, slots=True)
class ModelDims:
    """The sizes of a model that decide the GEMM shapes of every fusion site (the layer's and the LM head's)."""

    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    def __post_init__(self):
        for name in ("hidden", "intermediate", "heads", "kv_heads", "head_dim", "vocab"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"ModelDims.{name} must be a positive int, got {value!r}")
        if self.heads % self.kv_heads:
            raise ValueError(f"heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})")


DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


@dataclass(frozen=True, slots=True)
class Problem:
    """One op at one shape: what a study tunes, a trial measures and a table bucket serves.
    m is the number of tokens (the M bucket), (n, k) the weight's shape, dtype a name ("bfloat16").
    For decode attention m, n and k are the keys of kernel_space.attention_shape (batch and context
    in m, the head geometry in n and k), checked here: a GEMM-style M is refused, never misread."""

    op: str
    m: int
    n: int
    k: int
    dtype: str

    def __post_init__(self):
        for name in ("m", "n", "k"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Problem.{name} must be a positive int, got {value!r}")
        if self.dtype not in DTYPE_BYTES:
            raise ValueError(f"Problem.dtype must be one of {', '.join(DTYPE_BYTES)}, got {self.dtype!r}")
        if self.op == ATTENTION_OP:
            decode_m(self.m)
            decode_heads(self.n, self.k)

    @property
    def elem_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]


@dataclass(frozen=True)
class SearchSpace:
    """The choices of one op's search, as data. `values` maps a parameter to its candidates."""

    values: dict[str, tuple]

    def grid(self) -> Iterator[dict]:
        keys = list(self.values)
        for combo in itertools.product(*(self.values[k] for k in keys)):
            yield dict(zip(keys, combo, strict=True))

    def sample(self, rng: random.Random) -> dict:
        return {k: rng.choice(v) for k, v in self.values.items()}


# One space for the four ops: they share one Triton kernel, and differ only in prologue/epilogue.
# BLOCK_N 8 exists for the FMA path: at N = 1024 it still gives 128 programs without split-K.
DEFAULT_SPACE = SearchSpace(
    {
        "impl": IMPLS,
        "path": PATHS,
        "BLOCK_M": (1, 2, 4, 8, 16, 32, 64, 128),
        "BLOCK_N": (8, 16, 32, 64, 128, 256),
        "BLOCK_K": (32, 64, 128, 256, 512, 1024),
        "SPLIT_K": (1, 2, 3, 4, 6, 8, 12, 16),
        "GROUP_M": (1, 8),
        "num_warps": (2, 4, 8),
        "num_stages": (1, 2, 3, 4, 5),
        "split_reduce": ("kernel", "last_program"),
        "prologue": ("inline", "prepass", "rescan"),
    }
)

# The config the unfused arm is stored under: it has no tunables.
UNFUSED_CONFIG = {"impl": "unfused"}


@dataclass(frozen=True)
class OpSpec:
    """One fusion site: how its (N, K) follow from the model, its space, and its callables."""

    name: str
    shape: Callable[[ModelDims], tuple[int, int]]
    gated: bool  # two weight tiles per program (gate and up): doubles shared memory
    space: SearchSpace
    make_inputs: Callable  # (M, N, K, dtype, device, generator) -> dict of tensors
    fused: Callable  # (inputs, config) -> outputs
    unfused: Callable  # (inputs) -> outputs
    cublas: Callable  # (inputs) -> the GEMM alone
    reference: Callable  # (inputs) -> fp32 outputs
    output_names: tuple[str, ...] = field(default=("out",))
    kernel_sources: tuple[Callable, ...] = ()
    a_inputs: int = 1  # activation tensors the prologue reads per K step (x, and the residual)
    norm: bool = False  # has an RMSNorm prologue, so prologue=prepass (and rescan) is a distinct choice
    # The norm multiplies by a gain the model does not fold into the weight (lm_head): the GEMM's loop then
    # scales x in registers, and the MMA takes it from there rather than from x's shared-memory ring.
    gain: bool = False

    # "linear": a GEMM fusion site (this class's rules). "attention": decode attention, whose spec
    # (kernel_space.decode_attention.AttentionOpSpec) overrides check and cold_bytes and brings its own
    # defaults, redundancy rule and floor; the tuner asks `kind` where the two differ in kind.
    kind = "linear"

    def cold_bytes(self, m: int, n: int, k: int, elem_bytes: int) -> int:
        """Bytes of one input set that timing keeps cold in L2 (it rotates over copies of them): the weight."""
        return n * k * elem_bytes

    def compile_inputs(self, m: int, n: int, k: int, dtype, device, gen) -> dict:
        """The inputs the compile pool launches a config on (compile only): make_inputs'."""
        return self.make_inputs(m, n, k, dtype, device, gen)

    def n_out(self, n: int) -> int:
        """Output columns for a weight of n rows: the gated op writes silu(g) * u, half of them."""
        return n // 2 if self.gated else n

    def check(self, cfg: dict, m: int, n: int, k: int, elem_bytes: int,
              smem_limit: int = DEFAULT_SMEM_LIMIT) -> str | None:
        """check_config for this op at weight shape (n, k): why cfg cannot run, or None."""
        prologue = cfg.get("prologue")
        prepass = prologue == "prepass"
        if prologue in ("prepass", "rescan") and not self.norm:
            return f"prologue={prologue}: {self.name} has no norm prologue (use 'inline': one config, not two)"
        if prologue == "rescan" and not has_k_loop(cfg, k):
            return ("prologue=rescan: each split is one BLOCK_K block, with no K loop to take the sum of squares "
                    "out of (use 'inline': one config, not two)")
        why = check_config(cfg, m, self.n_out(n), k, elem_bytes=elem_bytes, gated=self.gated,
                           a_inputs=1 if prepass else self.a_inputs, smem_limit=smem_limit, space=self.space,
                           gain=self.gain and not prepass)
        if why is None and self.norm and not self.gain and prologue == "inline" and inline_ring_short(cfg, k):
            why = (f"prologue=inline on a {cfg['BLOCK_M']}-row tl.dot tile with {cfg['num_warps']} warps and a "
                   f"{cfg['num_stages']}-stage K loop: Triton gives x's tile one shared-memory buffer too few "
                   "when the warpgroup MMA and the norm both read it, and the next tile overwrites it while the "
                   "MMA reads (wrong results on sm_90; use prologue=rescan, or prepass)")
        return why

    def redundant(self, cfg: dict, m: int, n: int, k: int, elem_bytes: int) -> str | None:
        """Why a runnable cfg need not be searched at this shape (it builds and runs what another config
        does: `canonical`'s), or None. The search offers neither twin twice."""
        twin = self.canonical(cfg, m, n, k)
        if twin.get("GROUP_M") != cfg.get("GROUP_M"):
            return f"GROUP_M={cfg['GROUP_M']}: one row block, so grouped ordering changes nothing (GROUP_M=1)"
        if twin.get("num_stages") != cfg.get("num_stages"):
            if cfg["path"] == "fma":
                return (f"num_stages={cfg['num_stages']}: the FMA path has no tl.dot whose operands Triton "
                        "pipelines (num_stages=1 builds the same kernel)")
            return (f"num_stages={cfg['num_stages']}: each split is one BLOCK_K block, with no K loop to "
                    "pipeline (num_stages=1 builds the same kernel)")
        return None

    def canonical(self, cfg: dict, m: int, n: int, k: int) -> dict:
        """The config the search offers for cfg: cfg itself, or its twin where `redundant` names one (a
        seed from another bucket, GPU or an older tune is measured as the config it runs as). Decode
        attention's seeds are left as they are: the plan's are not redundant, and a neighbouring bucket's
        redundant winner is left out of the study."""
        if cfg.get("impl") == "unfused" or self.kind != "linear":
            return cfg
        out = dict(cfg)
        if math.ceil(m / cfg["BLOCK_M"]) == 1:
            out["GROUP_M"] = 1
        if not stages_matter(cfg, k):
            out["num_stages"] = 1
        return out


def smem_bytes(cfg: dict, elem_bytes: int, gated: bool, a_inputs: int = 1, k: int | None = None,
               gain: bool = False) -> int:
    """Shared memory the GEMM kernel asks for: its K loop's rings of W tiles (two when gated) and of
    activation tiles (x, a_inputs of them), as deep as `pipeline_depths` says, or the epilogue's fp32
    accumulator tile where that is larger, plus 512 B. On the tl.dot path, compiled for sm_90 by Triton
    3.6, that was what the kernel asked for (to 512 B) in 145 of 146 sampled configs, and over it in the
    other (tests/kernel_space/test_rings_compile.py compares it in CI). The FMA path has no ring, only a
    reduction's scratch, which the W and x tiles stand for: at most 32 KB in about 150 sampled configs,
    far under any limit, and sometimes over this figure. k: the problem's K (None: assume a K loop); gain:
    the loop scales x by the norm's gain (OpSpec.gain, prologue not prepass), loaded in a ring of its own."""
    depth_w, depth_a = pipeline_depths(cfg, k, gain)
    w_tiles = (2 if gated else 1) * cfg["BLOCK_N"] * cfg["BLOCK_K"] * depth_w
    a_tiles = (a_inputs * cfg["BLOCK_M"] + (1 if gain else 0)) * cfg["BLOCK_K"] * depth_a
    # After the loop the rings are free, and the epilogue moves the fp32 accumulator tile between layouts
    # through shared memory: with shallow rings and a large tile that is the larger.
    return max((w_tiles + a_tiles) * elem_bytes, cfg["BLOCK_M"] * cfg["BLOCK_N"] * FP32_BYTES) + 512


def pipeline_depths(cfg: dict, k: int | None = None, gain: bool = False) -> tuple[int, int]:
    """(W ring, activation ring) buffers of the K loop's software pipeline, as Triton 3.6 allocates them:
    one each without a loop to pipeline (one stage, one BLOCK_K block a split, or the FMA path, whose
    loads Triton does not pipeline); num_stages - 1 each on mma.sync, which has read its operands before
    the next copy lands; num_stages each on a warpgroup-MMA tile, which reads shared memory
    asynchronously and keeps one more buffer in use, except x's where the MMA takes x from registers
    (gain: scaled by the norm's gain first) and the inline norm's (inline_ring_short, refused)."""
    stages = cfg["num_stages"]
    if stages == 1 or not stages_matter(cfg, k):
        return 1, 1
    if warpgroup_mma(cfg):
        return stages, stages - 1 if gain else stages
    return stages - 1, stages - 1


def next_pow2(x: int) -> int:
    """The smallest power of two >= x (1 for x <= 1)."""
    return 1 << max(0, (x - 1).bit_length())


# The shape rules, stated once: the search space offers, the defaults shrink to and check_config
# enforces these ranges (as Triton's autotuner takes one prune_configs_by hook).
# Rows of Hopper's warpgroup MMA (wgmma): Triton runs a tl.dot of BLOCK_M >= 64 (4+ warps) as one, of
# fewer rows as mma.sync. Between 16 and 64 rows a 64-row tile is worth its padding: at Qwen3-8B M = 32
# (H100, PDL off) it took gate_up 82.6 -> 75.6 us, qkv 25.8 -> 23.7, down 43.2 -> 40.0, where cuBLAS
# alone took 74.1, 21.7 and 40.9; at M = 8 and 16 it won nothing (benchmarks/gemm_probe.py --wide-m).
WGMMA_ROWS = 64


def block_range(param: str, path: str, m: int, n_out: int, k: int) -> tuple[int, int]:
    """(lowest, highest) value of BLOCK_M, BLOCK_N or BLOCK_K worth running for path at this shape:
    tl.dot's 16-row minimum on the dot path, and no tile beyond the padded problem (it only wastes work),
    except a WGMMA_ROWS-row tile on the dot path at 16 < M < 64."""
    if param == "BLOCK_K":
        return 1, max(32, next_pow2(k))
    low = 16 if path == "dot" else 1
    size = m if param == "BLOCK_M" else n_out
    high = max(16, next_pow2(size))
    if param == "BLOCK_M" and path == "dot" and 16 < m < WGMMA_ROWS:
        high = WGMMA_ROWS
    return low, high


# The norm ops' inline prologue reads each x tile twice: as an operand of tl.dot and for the sum of
# squares. Where the tl.dot is Hopper's warpgroup MMA (WGMMA_ROWS rows or more, 4+ warps), which reads
# its operands from shared memory asynchronously, Triton 3.6's software pipeliner gives such a load one
# buffer fewer than the weight's (num_stages - 1: one at 2 stages) while it prefetches both as far ahead,
# so the copy of tile i + num_stages - 1 lands in the buffer the MMA of tile i may still be reading
# (Triton issue 6691). Measured on an H200 (benchmarks/README.md, twenty-eighth session): the partials
# such a kernel stores were wrong in whole rows, with either split-K reduction; rescan and prepass, whose
# loop feeds x to the MMA alone, get full rings and were right in every run.
# tests/kernel_space/test_rings_compile.py compiles the cases for sm_90 and reads the rings.
def inline_ring_short(cfg: dict, k: int) -> bool:
    """Whether an inline norm prologue would run in a K loop whose x ring is one buffer short (above)."""
    return warpgroup_mma(cfg) and cfg["num_stages"] >= 2 and stages_matter(cfg, k)


def warpgroup_mma(cfg: dict) -> bool:
    """Whether Triton runs the config's tl.dot as Hopper's warpgroup MMA (WGMMA_ROWS rows, 4+ warps), which
    reads its operands from shared memory asynchronously, rather than as mma.sync."""
    return cfg["path"] == "dot" and cfg["BLOCK_M"] >= WGMMA_ROWS and cfg["num_warps"] >= 4


def stages_matter(cfg: dict, k: int | None = None) -> bool:
    """Whether num_stages changes the kernel: not where each split is one BLOCK_K block (the ONE_BLOCK
    variant has no loop to pipeline), nor on the FMA path (Triton pipelines only a tl.dot's loads): their
    stages build the same PTX (tests/kernel_space/test_stages_compile.py compiles them for sm_90).
    k None: assume a K loop."""
    return cfg["path"] != "fma" and (k is None or has_k_loop(cfg, k))


def has_k_loop(cfg: dict, k: int) -> bool:
    """Whether a split's slice of K is more than one BLOCK_K block (geometry.LinearLaunch.k_per_split)."""
    blocks = math.ceil(k / cfg["BLOCK_K"])
    return math.ceil(blocks / cfg["SPLIT_K"]) > 1


def max_split(k: int, block_k: int) -> int:
    """The largest SPLIT_K that leaves no split empty: one BLOCK_K block each at least."""
    return math.ceil(k / block_k)


def check_config(
    cfg: dict,
    m: int,
    n: int,
    k: int,
    *,
    elem_bytes: int,
    gated: bool,
    a_inputs: int = 1,
    smem_limit: int = DEFAULT_SMEM_LIMIT,
    space: SearchSpace = DEFAULT_SPACE,
    memory_bytes: int = DEFAULT_DEVICE_MEMORY,
    gain: bool = False,
) -> str | None:
    """Return why `cfg` cannot run on an (m, n, k) problem (n: output columns), or None if it can.
    gain: the K loop scales x by a norm gain (smem_bytes). Never raises."""
    impl = cfg.get("impl")
    if impl not in IMPLS:
        return f"impl must be one of {IMPLS}, got {impl!r}"
    if impl == "unfused":
        return None
    return (_check_keys(cfg, space) or _check_path(cfg, gated) or _check_blocks(cfg, m, n, k) or _check_split(cfg, k)
            or _check_smem(cfg, k, elem_bytes, gated, a_inputs, smem_limit, gain)
            or check_launch(cfg, m, n, k, gated=gated, memory_bytes=memory_bytes))


def _check_keys(cfg: dict, space: SearchSpace) -> str | None:
    missing = [key for key in space.values if key not in cfg]
    if missing:
        return f"config lacks {', '.join(missing)}"
    for key, value in cfg.items():
        if key in space.values and value not in space.values[key]:
            return f"{key}={value!r} is not in the search space {space.values[key]}"
    return None


def _check_path(cfg: dict, gated: bool = False) -> str | None:
    if cfg["path"] != "fma":
        acc = (2 if gated else 1) * cfg["BLOCK_M"] * cfg["BLOCK_N"] // (cfg["num_warps"] * 32)
        if acc > DOT_ACCUMULATOR_BUDGET:
            return (f"path=dot holds {'2 x ' if gated else ''}BLOCK_M*BLOCK_N/threads = {acc} fp32 accumulators per "
                    f"thread (> {DOT_ACCUMULATOR_BUDGET}: it would spill, and takes minutes to compile)")
        return None
    regs = cfg["BLOCK_M"] * cfg["BLOCK_N"] * cfg["BLOCK_K"] // (cfg["num_warps"] * 32)
    if regs > FMA_REGISTER_BUDGET:
        return (f"path=fma holds BLOCK_M*BLOCK_N*BLOCK_K/threads = {regs} fp32 registers per thread "
                f"(> {FMA_REGISTER_BUDGET}: it would spill)")
    return None


def _check_blocks(cfg: dict, m: int, n: int, k: int) -> str | None:
    return _blocks_reason(cfg["path"], cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["BLOCK_K"], m, n, k)


# The tuner's space walks tens of thousands of configs a shape that share a few hundred tile shapes:
# the tile rules and the launch's are computed once per distinct argument set.
@functools.lru_cache(maxsize=1 << 16)
def _blocks_reason(path: str, block_m: int, block_n: int, block_k: int, m: int, n: int, k: int) -> str | None:
    blocks = {"BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_K": block_k}
    for param, size, dim in (("BLOCK_M", m, "M"), ("BLOCK_N", n, "N"), ("BLOCK_K", k, "K")):
        low, high = block_range(param, path, m, n, k)
        if blocks[param] < low:
            return f"path={path} needs {param} >= {low} (tl.dot's minimum), got {blocks[param]}"
        if blocks[param] > high:
            return f"{param}={blocks[param]} exceeds the padded {dim} ({high}) for {dim}={size}"
    return None


def _check_split(cfg: dict, k: int) -> str | None:
    split = cfg["SPLIT_K"]
    if split == 1 and cfg["split_reduce"] != "kernel":
        return "split_reduce only matters with SPLIT_K > 1 (use 'kernel' there: one config, not two)"
    most = max_split(k, cfg["BLOCK_K"])
    if split > 1 and split > most:
        return f"SPLIT_K={split} leaves empty splits: K={k} has only {most} blocks of {cfg['BLOCK_K']}"
    return None


def _check_smem(cfg: dict, k: int, elem_bytes: int, gated: bool, a_inputs: int, smem_limit: int,
                gain: bool = False) -> str | None:
    smem = smem_bytes(cfg, elem_bytes, gated, a_inputs, k, gain)
    if smem > smem_limit:
        return f"shared memory estimate {smem} B exceeds the device limit {smem_limit} B"
    return None


def check_launch(cfg: dict, m: int, n: int, k: int, *, gated: bool,
                 memory_bytes: int = DEFAULT_DEVICE_MEMORY) -> str | None:
    """Why the launch of cfg at (m, n, k) cannot run: a grid beyond CUDA's limits, or split-K scratch
    over 1/SCRATCH_SHARE of the device memory. (Offsets past 2^31 are not refused: the launch
    indexes in 64 bits there.) n: output columns."""
    return _launch_reason(cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["BLOCK_K"], cfg["SPLIT_K"], m, n, k, gated, memory_bytes)


@functools.lru_cache(maxsize=1 << 16)
def _launch_reason(block_m: int, block_n: int, block_k: int, split: int, m: int, n: int, k: int, gated: bool,
                   memory_bytes: int) -> str | None:
    launch = LinearLaunch(m, n, k, block_m, block_n, block_k, split, gated)
    why = launch.grid_problem()
    if why:
        return why
    scratch = launch.scratch_bytes(norm=False)  # the partials: the sums of squares add at most 1/8 more
    if scratch > memory_bytes // SCRATCH_SHARE:
        return (f"split-K scratch of {scratch / 1e9:.1f} GB (SPLIT_K={launch.split} x M={m} x {launch.width} "
                f"fp32 partials) exceeds 1/{SCRATCH_SHARE} of the device's {memory_bytes / 1e9:.0f} GB")
    return None


def config_key(cfg: dict) -> str:
    """A stable text form of a config, for deduplication and display: the GEMM space's keys in its
    order, then any other keys (decode attention's SPLITS, pack, combine) sorted by name."""
    if cfg.get("impl") == "unfused":
        return "unfused"
    order = list(DEFAULT_SPACE.values) + sorted(key for key in cfg if key not in DEFAULT_SPACE.values)
    return ",".join(f"{key}={cfg[key]}" for key in order if key in cfg and key != "impl")
