"""Issue 10, item 4, a second time: one launch for every layer of a batch-1 decode step, with each
program's weights of the next stage loaded into its registers while it waits at the stage barrier.

    python3 benchmarks/resident_probe.py OUT.json [--model qwen3-0.6b] [--table FILE] [--warps 8,16]
        [--preload 31,0] [--layer --context 256] [--smoke]

The thirteenth session's probe (persistent_probe.py, H100) lost everywhere: its stages streamed their
weights at 0.7-1.6 TB/s (a K loop a tile, each step waiting on its loads, after an L2 prefetch that is
only a hint) and its grid barrier cost 1.8 us (an arrival, then the last program advancing a
generation the others spin on). This probe changes both:

- **Resident weights.** At Qwen3-0.6B's sizes a program a SM owns 32-131 KB of a stage's weight (the
  qkv rows of 1,024 columns, o_proj's 8 rows of 2,048, gate's and up's 24 rows each, down's 8 rows of
  3,072): all of it fits in the registers of a 16-warp program. A program loads its whole tile of stage
  s + 1 right after it has arrived at stage s's barrier, so the weight stream runs while the grid
  waits, and after the barrier only the activation row (from L2) is still to come.
- **A one-hop barrier.** One counter for the whole launch: a program arrives with a release add, then
  waits with acquire loads until the counter reaches (stages done) x programs. No program advances
  anything for the others. The counter is zeroed before each launch (a memset in the graph).

Arms, checked against persistent_probe's fp32 references first, then timed as the tuner times an op
(tuner.measure.time_graph: a CUDA graph, median of replays), every layer its own weights so that they
stream from memory:

- `launches`: today's fused ops, one launch each (the table's M = 1 configs, PDL): persistent_probe's;
- `resident`: resident_chain_kernel (or resident_layer_kernel with --layer: decode attention as a stage,
  the q/k norm, RoPE and cache write inside, decode attention's own jit helpers), one cooperative launch;
  `preload` (a bit a stage: 1 qkv, 2 o_proj, 4 gate, 8 up, 16 down) says which tiles are loaded before
  the wait; the others are loaded after the barrier (0: none, what the resident weights bring);
- `barriers`: the launch's barriers alone;
- `floor`: the weight (and K/V) bytes over the measured copy bandwidth.

STAGE >= 0 runs one stage of one layer a launch, without barriers: Triton's interpreter runs a grid's
programs one after another, so a barrier would never open there; the CPU tests check that mode's
arithmetic and compile the persistent one for sm_90 ahead of time.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
from pathlib import Path

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import persistent_probe as pp

LOG2E = 1.4426950408889634
# PRELOAD's bits: the stages (gate and up apart) whose tile a program loads before the barrier's wait.
PL_QKV, PL_O, PL_GATE, PL_UP, PL_DOWN = (tl.constexpr(1 << i) for i in range(5))
PRELOAD_ALL = 31
# KERNEL_SEARCH_RESIDENT_OPAQUE=1: the persistent loop's offsets kept from the compiler (else it hoists
# them out of the layer loop, where they hold registers all launch long; opaque, the loads lose their
# vector width: 3.3x slower on the H200, benchmarks/README.md).
OPAQUE_ON = tl.constexpr(os.environ.get("KERNEL_SEARCH_RESIDENT_OPAQUE", "0") != "0")


@triton.jit
def _arrive(cnt_ptr):
    """This program's stores, every thread's, then one release add on the launch's counter."""
    tl.debug_barrier()
    tl.atomic_add(cnt_ptr, 1, sem="release", scope="gpu")


@triton.jit
def _wait(cnt_ptr, target):
    """Until `target` arrivals have been counted (acquire loads), then every thread goes on."""
    cur = tl.atomic_add(cnt_ptr, 0, sem="acquire", scope="gpu")
    while cur < target:
        cur = tl.atomic_add(cnt_ptr, 0, sem="acquire", scope="gpu")
    tl.debug_barrier()


@triton.jit
def _opaque(x):
    """x, through an instruction the compiler may not move or fold: what is computed from it is
    computed where it is used, not hoisted out of the layer loop to hold registers all launch long."""
    return tl.inline_asm_elementwise("mov.u32 $0, $1;", "=r,r", [x], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _ar(n: tl.constexpr, OPAQUE: tl.constexpr):
    """tl.arange(0, n), opaque to the compiler with OPAQUE (see _opaque)."""
    r = tl.arange(0, n)
    if OPAQUE and OPAQUE_ON:
        r = _opaque(r)
    return r


@triton.jit
def _tile(w_ptr, pid, R, N, K, live, BN: tl.constexpr, KP: tl.constexpr, OPAQUE: tl.constexpr = False):
    """Rows pid * R .. pid * R + R - 1 (below N) of the row-major [N, K] weight, whole rows, as one
    [BN, KP] tile (BN >= R, KP >= K: masked); all zero where not `live`. OPAQUE (the persistent loop,
    never the interpreter): the tile's offsets and masks are computed here, each time."""
    r = _ar(BN, OPAQUE)
    cols = _ar(KP, OPAQUE)
    rows = pid * R + r
    mask = ((r < R) & (rows < N) & live)[:, None] & (cols < K)[None, :]
    return tl.load(w_ptr + rows.to(tl.int64)[:, None] * K + cols[None, :], mask=mask, other=0.0)


@triton.jit
def _row(x_ptr, K, KP: tl.constexpr, OPAQUE: tl.constexpr):
    """An activation row [KP] in fp32 from L2 (.cg: never a stale line of this SM's L1)."""
    cols = _ar(KP, OPAQUE)
    return tl.load(x_ptr + cols, mask=cols < K, other=0.0, cache_modifier=".cg").to(tl.float32)


@triton.jit
def _normed(h_ptr, g_ptr, D, eps, KP: tl.constexpr, OPAQUE: tl.constexpr):
    """rmsnorm(h) * g, rounded to h's dtype after the norm and after the gain (the model's norm)."""
    dt: tl.constexpr = h_ptr.dtype.element_ty
    cols = _ar(KP, OPAQUE)
    g = tl.load(g_ptr + cols, mask=cols < D, other=0.0).to(tl.float32)  # first: in flight beside the row
    x = _row(h_ptr, D, KP, OPAQUE)
    rstd = tl.rsqrt(tl.sum(x * x, axis=0) / D + eps)
    x = (x * rstd).to(dt).to(tl.float32)
    return (x * g).to(dt).to(tl.float32)


@triton.jit
def _store_rows(out_ptr, acc, pid, R, N, BN: tl.constexpr, OPAQUE: tl.constexpr):
    r = _ar(BN, OPAQUE)
    rows = pid * R + r
    tl.store(out_ptr + rows, acc.to(out_ptr.dtype.element_ty), mask=(r < R) & (rows < N))


@triton.jit
def _res(res_ptr, pid, R, N, BN: tl.constexpr, OPAQUE: tl.constexpr):
    """The residual's rows of this program (fp32), loaded with the stage's tile: before the row."""
    r = _ar(BN, OPAQUE)
    rows = pid * R + r
    return tl.load(res_ptr + rows, mask=(r < R) & (rows < N), other=0.0, cache_modifier=".cg").to(tl.float32)


@triton.jit
def _qkv(w, h_ptr, g_ptr, qkv_ptr, pid, R, N, D, eps, BN: tl.constexpr, KD: tl.constexpr, OPAQUE: tl.constexpr):
    x = _normed(h_ptr, g_ptr, D, eps, KD, OPAQUE)
    _store_rows(qkv_ptr, tl.sum(w.to(tl.float32) * x[None, :], axis=1), pid, R, N, BN, OPAQUE)


@triton.jit
def _o_proj(w, res, o_ptr, h2_ptr, pid, R, D, HHD, BN: tl.constexpr, KO: tl.constexpr, OPAQUE: tl.constexpr):
    """h2 = h + o . Wo, h's rows `res` (_res)."""
    x = _row(o_ptr, HHD, KO, OPAQUE)
    acc = tl.sum(w.to(tl.float32) * x[None, :], axis=1).to(h2_ptr.dtype.element_ty).to(tl.float32) + res
    _store_rows(h2_ptr, acc, pid, R, D, BN, OPAQUE)


@triton.jit
def _gate_up(wg, wu, h2_ptr, g_ptr, a_ptr, pid, R, INTER, D, eps, BN: tl.constexpr, KD: tl.constexpr,
             OPAQUE: tl.constexpr):
    dt: tl.constexpr = a_ptr.dtype.element_ty
    x = _normed(h2_ptr, g_ptr, D, eps, KD, OPAQUE)
    g = tl.sum(wg.to(tl.float32) * x[None, :], axis=1).to(dt).to(tl.float32)
    u = tl.sum(wu.to(tl.float32) * x[None, :], axis=1).to(dt).to(tl.float32)
    _store_rows(a_ptr, g * tl.sigmoid(g) * u, pid, R, INTER, BN, OPAQUE)


@triton.jit
def _down(w, res, a_ptr, h_ptr, pid, R, D, INTER, BN: tl.constexpr, KI: tl.constexpr, OPAQUE: tl.constexpr):
    """h = h2 + a . Wd, h2's rows `res` (_res)."""
    x = _row(a_ptr, INTER, KI, OPAQUE)
    acc = tl.sum(w.to(tl.float32) * x[None, :], axis=1).to(h_ptr.dtype.element_ty).to(tl.float32) + res
    _store_rows(h_ptr, acc, pid, R, D, BN, OPAQUE)


@triton.jit
def resident_chain_kernel(h_ptr, h2_ptr, qkv_ptr, a_ptr, wqkv_ptr, wo_ptr, wgu_ptr, wd_ptr, g1_ptr, g2_ptr, cnt_ptr,
                          LAYERS, LAYER, D, NQKV, HHD, INTER, eps, R0, R1, R2, R3,
                          STAGE: tl.constexpr, PRELOAD: tl.constexpr, KD: tl.constexpr, KO: tl.constexpr,
                          KI: tl.constexpr, BN0: tl.constexpr, BN1: tl.constexpr, BN2: tl.constexpr,
                          BN3: tl.constexpr):
    """persistent_probe.chain_kernel's layers (qkv = rmsnorm(h) g1 . Wqkv; h2 = h + qkv[:HHD] . Wo;
    a = silu(rmsnorm(h2) g2 . Wg) * (. Wu); h = h2 + a . Wd), program pid owning rows pid * Rs ..
    pid * Rs + Rs - 1 of stage s's output, its whole rows of the weight one register tile [BNs, K].
    STAGE < 0: every layer, one barrier after each stage; with PRELOAD the next stage's tile is loaded
    between this program's arrival and its wait. STAGE >= 0: that stage of layer LAYER, no barrier."""
    pid = tl.program_id(0)
    P = tl.num_programs(0)
    if STAGE >= 0:
        wide = tl.cast(LAYER, tl.int64)
        if STAGE == 0:
            w = _tile(wqkv_ptr + wide * NQKV * D, pid, R0, NQKV, D, True, BN0, KD, STAGE < 0)
            _qkv(w, h_ptr, g1_ptr + wide * D, qkv_ptr, pid, R0, NQKV, D, eps, BN0, KD, STAGE < 0)
        elif STAGE == 1:
            w = _tile(wo_ptr + wide * D * HHD, pid, R1, D, HHD, True, BN1, KO, STAGE < 0)
            _o_proj(w, _res(h_ptr, pid, R1, D, BN1, False), qkv_ptr, h2_ptr, pid, R1, D, HHD, BN1, KO, False)
        elif STAGE == 2:
            base = wgu_ptr + wide * 2 * INTER * D
            wg = _tile(base, pid, R2, INTER, D, True, BN2, KD, STAGE < 0)
            wu = _tile(base + INTER * D, pid, R2, INTER, D, True, BN2, KD, STAGE < 0)
            _gate_up(wg, wu, h2_ptr, g2_ptr + wide * D, a_ptr, pid, R2, INTER, D, eps, BN2, KD, STAGE < 0)
        else:
            w = _tile(wd_ptr + wide * D * INTER, pid, R3, D, INTER, True, BN3, KI, STAGE < 0)
            _down(w, _res(h2_ptr, pid, R3, D, BN3, False), a_ptr, h_ptr, pid, R3, D, INTER, BN3, KI, False)
    else:
        w0 = _tile(wqkv_ptr, pid, R0, NQKV, D, True, BN0, KD, STAGE < 0)
        for layer in range(LAYERS):
            wide = tl.cast(layer, tl.int64)
            step = layer * 4
            _qkv(w0, h_ptr, g1_ptr + wide * D, qkv_ptr, pid, R0, NQKV, D, eps, BN0, KD, STAGE < 0)
            _arrive(cnt_ptr)
            if (PRELOAD & PL_O) != 0:
                w1 = _tile(wo_ptr + wide * D * HHD, pid, R1, D, HHD, True, BN1, KO, STAGE < 0)
                r1 = _res(h_ptr, pid, R1, D, BN1, STAGE < 0)
            _wait(cnt_ptr, (step + 1) * P)
            if (PRELOAD & PL_O) == 0:
                w1 = _tile(wo_ptr + wide * D * HHD, pid, R1, D, HHD, True, BN1, KO, STAGE < 0)
                r1 = _res(h_ptr, pid, R1, D, BN1, STAGE < 0)
            _o_proj(w1, r1, qkv_ptr, h2_ptr, pid, R1, D, HHD, BN1, KO, STAGE < 0)
            _arrive(cnt_ptr)
            base = wgu_ptr + wide * 2 * INTER * D
            if (PRELOAD & PL_GATE) != 0:
                wg = _tile(base, pid, R2, INTER, D, True, BN2, KD, STAGE < 0)
            if (PRELOAD & PL_UP) != 0:
                wu = _tile(base + INTER * D, pid, R2, INTER, D, True, BN2, KD, STAGE < 0)
            _wait(cnt_ptr, (step + 2) * P)
            if (PRELOAD & PL_GATE) == 0:
                wg = _tile(base, pid, R2, INTER, D, True, BN2, KD, STAGE < 0)
            if (PRELOAD & PL_UP) == 0:
                wu = _tile(base + INTER * D, pid, R2, INTER, D, True, BN2, KD, STAGE < 0)
            _gate_up(wg, wu, h2_ptr, g2_ptr + wide * D, a_ptr, pid, R2, INTER, D, eps, BN2, KD, STAGE < 0)
            _arrive(cnt_ptr)
            if (PRELOAD & PL_DOWN) != 0:
                w3 = _tile(wd_ptr + wide * D * INTER, pid, R3, D, INTER, True, BN3, KI, STAGE < 0)
                r3 = _res(h2_ptr, pid, R3, D, BN3, STAGE < 0)
            _wait(cnt_ptr, (step + 3) * P)
            if (PRELOAD & PL_DOWN) == 0:
                w3 = _tile(wd_ptr + wide * D * INTER, pid, R3, D, INTER, True, BN3, KI, STAGE < 0)
                r3 = _res(h2_ptr, pid, R3, D, BN3, STAGE < 0)
            _down(w3, r3, a_ptr, h_ptr, pid, R3, D, INTER, BN3, KI, STAGE < 0)
            _arrive(cnt_ptr)
            more = layer + 1 < LAYERS
            if (PRELOAD & PL_QKV) != 0:
                w0 = _tile(wqkv_ptr + (wide + 1) * NQKV * D, pid, R0, NQKV, D, more, BN0, KD, STAGE < 0)
            _wait(cnt_ptr, (step + 4) * P)
            if (PRELOAD & PL_QKV) == 0:
                w0 = _tile(wqkv_ptr + (wide + 1) * NQKV * D, pid, R0, NQKV, D, more, BN0, KD, STAGE < 0)


@triton.jit
def barrier_chain_kernel(cnt_ptr, N):
    """N of the resident kernels' barriers and nothing else."""
    P = tl.num_programs(0)
    for i in range(N):
        _arrive(cnt_ptr)
        _wait(cnt_ptr, (i + 1) * P)


def rows_per_program(n: int, programs: int) -> tuple[int, int]:
    """(R, BN): rows a program owns of an output of n rows over `programs` programs, and its tile's
    rows (the power of two >= R)."""
    r = math.ceil(n / programs)
    return r, triton.next_power_of_2(r)


def tiling(nqkv: int, d: int, hhd: int, inter: int, programs: int) -> tuple[tuple, dict]:
    """The rows a program owns of each stage's output (R0..R3: qkv, o_proj, gate and up, down) and the
    tiles' compile-time sizes (BN0..BN3 rows, KD / KO / KI columns) over `programs` programs."""
    (r0, bn0), (r1, bn1) = rows_per_program(nqkv, programs), rows_per_program(d, programs)
    (r2, bn2), (r3, bn3) = rows_per_program(inter, programs), rows_per_program(d, programs)
    return (r0, r1, r2, r3), dict(KD=triton.next_power_of_2(d), KO=triton.next_power_of_2(hhd),
                                  KI=triton.next_power_of_2(inter), BN0=bn0, BN1=bn1, BN2=bn2, BN3=bn3)


class ResidentChain(pp.Chain):
    """resident_chain_kernel's buffers and launch settings for make_weights' weights (persistent_probe.Chain's
    buffers, its tiles and counter in place of the K-loop tiles and the generation barrier)."""

    def __init__(self, w: dict, heads_dim: int, programs: int, eps: float = 1e-6, num_warps: int = 16,
                 preload: int = PRELOAD_ALL):
        super().__init__(w, heads_dim, programs, eps)
        self.cnt = torch.zeros(1, dtype=torch.int32, device=self.h.device)
        self.rows, tiles = tiling(self.nqkv, self.d, heads_dim, self.inter, programs)
        self.meta = {"PRELOAD": preload, **tiles, "num_warps": num_warps}

    def _args(self, layer: int = 0) -> tuple:
        w = self.w
        return (self.h, self.h2, self.qkv, self.a, w["wqkv"], w["wo"], w["wgu"], w["wd"], w["g1"], w["g2"],
                self.cnt, self.layers, layer, self.d, self.nqkv, self.heads_dim, self.inter, self.eps, *self.rows)

    def run_persistent(self) -> None:
        """Every layer in one cooperative launch (CUDA only); the counter zeroed first."""
        self.cnt.zero_()
        self.compiled = resident_chain_kernel[(self.programs,)](*self._args(), STAGE=-1, launch_cooperative_grid=True,
                                                                **self.meta)

    def run_stages(self) -> None:
        """One launch a stage (no barrier): what the interpreter can run."""
        for layer in range(self.layers):
            for stage in range(4):
                resident_chain_kernel[(self.programs,)](*self._args(layer), STAGE=stage, **self.meta)


@triton.jit
def resident_layer_kernel(h_ptr, h2_ptr, qkv_ptr, o_ptr, a_ptr, part_ptr, ml_ptr, attn_count_ptr,  # noqa: C901
                          wqkv_ptr, wo_ptr, wgu_ptr, wd_ptr, g1_ptr, g2_ptr, qn_ptr, kn_ptr, cos_ptr, sin_ptr,
                          kc_ptr, vc_ptr, cnt_ptr, pos_ptr, LAYERS, LAYER, D, NQKV, HHD, INTER, L, SPLITS, eps,
                          qk_scale, stride_cos, R0, R1, R2, R3,
                          STAGE: tl.constexpr, PRELOAD: tl.constexpr, H: tl.constexpr, KV: tl.constexpr,
                          HD: tl.constexpr, HP: tl.constexpr, HC: tl.constexpr, CS: tl.constexpr,
                          BLOCK_ATT: tl.constexpr, KD: tl.constexpr, KO: tl.constexpr, KI: tl.constexpr,
                          BN0: tl.constexpr, BN1: tl.constexpr, BN2: tl.constexpr, BN3: tl.constexpr):
    """Whole decoder layers at batch 1 (persistent_probe.layer_kernel's five stages: qkv, decode attention
    with its prep and the cache write, o_proj, gate_up, down) with resident_chain_kernel's tiles and
    barriers: o_proj's tile is loaded while attention runs. Every layer has its own qkv, o, partial and
    counter rows; the caches are [layers, L, KV, HD]."""
    pid = tl.program_id(0)
    P = tl.num_programs(0)
    pos = tl.load(pos_ptr)
    if STAGE >= 0:
        first = LAYER
        last = LAYER + 1
    else:
        first = 0
        last = LAYERS
    if STAGE <= 0:
        w0 = _tile(wqkv_ptr + tl.cast(first, tl.int64) * NQKV * D, pid, R0, NQKV, D, True, BN0, KD, STAGE < 0)
    for layer in range(first, last):
        wide = tl.cast(layer, tl.int64)
        step = layer * 5
        qkv = qkv_ptr + wide * NQKV
        o = o_ptr + wide * HHD
        if STAGE < 0 or STAGE == 0:
            _qkv(w0, h_ptr, g1_ptr + wide * D, qkv, pid, R0, NQKV, D, eps, BN0, KD, STAGE < 0)
        if STAGE < 0:
            _arrive(cnt_ptr)
            if (PRELOAD & PL_O) != 0:
                w1 = _tile(wo_ptr + wide * D * HHD, pid, R1, D, HHD, True, BN1, KO, STAGE < 0)
                r1 = _res(h_ptr, pid, R1, D, BN1, STAGE < 0)
            _wait(cnt_ptr, (step + 1) * P)
        if STAGE < 0 or STAGE == 1:
            for item in range(pid, KV * SPLITS, P):
                pp._attention_item(item % KV, item // KV, qkv, qn_ptr + wide * HD, kn_ptr + wide * HD, cos_ptr,
                                   sin_ptr, kc_ptr + wide * L * KV * HD, vc_ptr + wide * L * KV * HD, o,
                                   part_ptr + wide * H * SPLITS * HD, ml_ptr + wide * H * SPLITS * 2,
                                   attn_count_ptr + wide * KV, pos, L, qk_scale, eps, SPLITS, stride_cos,
                                   KV * HD, HD, H, KV, H // KV, HP, HD, BLOCK_ATT, HC, CS)
        if STAGE < 0:
            _arrive(cnt_ptr)
            _wait(cnt_ptr, (step + 2) * P)
        if STAGE == 2 or (STAGE < 0 and (PRELOAD & PL_O) == 0):
            w1 = _tile(wo_ptr + wide * D * HHD, pid, R1, D, HHD, True, BN1, KO, STAGE < 0)
            r1 = _res(h_ptr, pid, R1, D, BN1, STAGE < 0)
        if STAGE < 0 or STAGE == 2:
            _o_proj(w1, r1, o, h2_ptr, pid, R1, D, HHD, BN1, KO, STAGE < 0)
        base = wgu_ptr + wide * 2 * INTER * D
        if STAGE < 0:
            _arrive(cnt_ptr)
            if (PRELOAD & PL_GATE) != 0:
                wg = _tile(base, pid, R2, INTER, D, True, BN2, KD, STAGE < 0)
            if (PRELOAD & PL_UP) != 0:
                wu = _tile(base + INTER * D, pid, R2, INTER, D, True, BN2, KD, STAGE < 0)
            _wait(cnt_ptr, (step + 3) * P)
        if STAGE == 3 or (STAGE < 0 and (PRELOAD & PL_GATE) == 0):
            wg = _tile(base, pid, R2, INTER, D, True, BN2, KD, STAGE < 0)
        if STAGE == 3 or (STAGE < 0 and (PRELOAD & PL_UP) == 0):
            wu = _tile(base + INTER * D, pid, R2, INTER, D, True, BN2, KD, STAGE < 0)
        if STAGE < 0 or STAGE == 3:
            _gate_up(wg, wu, h2_ptr, g2_ptr + wide * D, a_ptr, pid, R2, INTER, D, eps, BN2, KD, STAGE < 0)
        if STAGE < 0:
            _arrive(cnt_ptr)
            if (PRELOAD & PL_DOWN) != 0:
                w3 = _tile(wd_ptr + wide * D * INTER, pid, R3, D, INTER, True, BN3, KI, STAGE < 0)
                r3 = _res(h2_ptr, pid, R3, D, BN3, STAGE < 0)
            _wait(cnt_ptr, (step + 4) * P)
        if STAGE == 4 or (STAGE < 0 and (PRELOAD & PL_DOWN) == 0):
            w3 = _tile(wd_ptr + wide * D * INTER, pid, R3, D, INTER, True, BN3, KI, STAGE < 0)
            r3 = _res(h2_ptr, pid, R3, D, BN3, STAGE < 0)
        if STAGE < 0 or STAGE == 4:
            _down(w3, r3, a_ptr, h_ptr, pid, R3, D, INTER, BN3, KI, STAGE < 0)
        if STAGE < 0:
            _arrive(cnt_ptr)
            more = layer + 1 < LAYERS
            if (PRELOAD & PL_QKV) != 0:
                w0 = _tile(wqkv_ptr + (wide + 1) * NQKV * D, pid, R0, NQKV, D, more, BN0, KD, STAGE < 0)
            _wait(cnt_ptr, (step + 5) * P)
            if (PRELOAD & PL_QKV) == 0:
                w0 = _tile(wqkv_ptr + (wide + 1) * NQKV * D, pid, R0, NQKV, D, more, BN0, KD, STAGE < 0)


class ResidentLayer(pp.Layer):
    """resident_layer_kernel's buffers and launch settings (persistent_probe.Layer's, its tiles and
    counter in place of the K-loop tiles and the generation barrier)."""

    def __init__(self, w: dict, programs: int, pos: int, eps: float = 1e-6, num_warps: int = 16,
                 preload: int = PRELOAD_ALL, splits: int | None = None):
        super().__init__(w, programs, pos, eps, num_warps=num_warps, splits=splits)
        layers, d, nqkv, hhd, inter, context, splits = self.dims
        self.cnt = torch.zeros(1, dtype=torch.int32, device=self.h.device)
        self.rows, tiles = tiling(nqkv, d, hhd, inter, programs)
        keep = ("H", "KV", "HD", "HP", "HC", "CS", "BLOCK_ATT", "num_warps")
        self.meta = {**{k: self.meta[k] for k in keep}, "PRELOAD": preload, **tiles}

    def _args(self, layer: int = 0) -> tuple:
        w = self.w
        layers, d, nqkv, hhd, inter, context, splits = self.dims
        return (self.h, self.h2, self.qkv, self.o, self.a, self.part, self.ml, self.attn_count,
                w["wqkv"], w["wo"], w["wgu"], w["wd"], w["g1"], w["g2"], w["qn"], w["kn"], w["cos"], w["sin"],
                w["kc"], w["vc"], self.cnt, self.pos, layers, layer, d, nqkv, hhd, inter, context, splits, self.eps,
                w["head_dim"] ** -0.5 * LOG2E, w["cos"].stride(0), *self.rows)

    def run_persistent(self) -> None:
        self.cnt.zero_()
        self.compiled = resident_layer_kernel[(self.programs,)](*self._args(), STAGE=-1, launch_cooperative_grid=True,
                                                                **self.meta)

    def run_stages(self) -> None:
        for layer in range(self.dims[0]):
            for stage in range(5):
                resident_layer_kernel[(self.programs,)](*self._args(layer), STAGE=stage, **self.meta)


def time_barriers(n: int, programs: int, num_warps: int) -> float:
    """Milliseconds of one cooperative launch of n of the resident kernels' barriers (counter zeroed)."""
    cnt = torch.zeros(1, dtype=torch.int32, device="cuda")

    def run():
        cnt.zero_()
        barrier_chain_kernel[(programs,)](cnt, n, num_warps=num_warps, launch_cooperative_grid=True)

    return pp._graph_ms(run)


def smoke(layer: bool) -> int:
    """Two layers of small shapes in one persistent launch (every tile preloaded, none, gate alone), checked."""
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    h0 = torch.randn(256, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16).cuda()
    if layer:
        w = pp.make_layer_inputs(256, 4, 2, 64, 320, 2, 100, torch.bfloat16, "cuda")
        want = pp.layer_reference(h0, w, 99)[0]
    else:
        w = pp.make_weights(256, 128, 384, 320, 2, torch.bfloat16, "cuda")
        want = pp.reference(h0, w, 128, 1e-6)
    for preload in (PRELOAD_ALL, 0, int(PL_GATE)):
        runner = ResidentLayer(w, sms, 99, preload=preload) if layer else ResidentChain(w, 128, sms, preload=preload)
        runner.h.copy_(h0)
        runner.run_persistent()
        torch.cuda.synchronize()
        err = ((runner.h.float() - want).abs().max() / want.abs().max()).item()
        print(f"smoke ({'layer' if layer else 'chain'}, preload {preload}): {sms} programs, max error {err:.3g} "
              "of the largest value", flush=True)
        if err > 0.05:
            return 1
    return 0


def _masks(text: str) -> list[int]:
    """--preload's comma list of masks, 0..PRELOAD_ALL."""
    try:
        masks = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of ints: {text!r}") from None
    if any(not 0 <= x <= PRELOAD_ALL for x in masks):
        raise argparse.ArgumentTypeError(f"a mask is 0..{PRELOAD_ALL}, got {text!r}")
    return masks


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    pp.common_args(p, [8, 16], "the SMs")
    p.add_argument("--preload", type=_masks, default=[PRELOAD_ALL, 0],
                   help="comma list of masks: the tiles a program loads before the barrier's wait, a bit a stage "
                        "(1 qkv, 2 o_proj, 4 gate, 8 up, 16 down; 31 all, 0 none)")
    p.add_argument("--smoke", action="store_true",
                   help="one persistent launch over 2 small layers, checked, then exit (run it under a short "
                        "timeout first: a barrier that never opens hangs the GPU)")
    args = p.parse_args(argv)
    bad = [x for x in args.warps if x not in (1, 2, 4, 8, 16, 32)]
    if bad:
        raise SystemExit(f"error: num_warps must be one of 1, 2, 4, 8, 16, 32; got {bad}")
    if args.context < 1:
        raise SystemExit(f"error: --context must be at least 1, got {args.context}")
    if not torch.cuda.is_available():
        raise SystemExit("error: the probe needs a CUDA GPU")
    if args.smoke:
        return smoke(args.layer)
    run = pp.start_run(args)
    cfg, w, h0, rows, check, save = run.cfg, run.w, run.h0, run.rows, run.check, run.save
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    grids = args.programs or [sms]
    barriers = cfg.num_hidden_layers * (5 if args.layer else 4)
    for grid, warps in itertools.product(grids, sorted(set(args.warps))):
        try:
            ms = time_barriers(barriers, grid, warps)
        except RuntimeError as exc:
            rows.append({"arm": "barriers", "programs": grid, "num_warps": warps,
                         "error": str(exc).splitlines()[0][:200]})
        else:
            rows.append({"arm": "barriers", "programs": grid, "num_warps": warps, "barriers": barriers, "ms": ms,
                         "us_per_barrier": ms * 1e3 / barriers})
            print(f"{barriers} barriers alone, {grid} programs x {warps} warps: {ms:.3f} ms", flush=True)
        save()
    pos = args.context - 1
    for grid, warps in itertools.product(grids, sorted(set(args.warps))):
        # The same stage code, a launch a stage (no barrier, no preload, nothing resident): what a stage
        # costs on its own.
        runner = (ResidentLayer(w, grid, pos, num_warps=warps, preload=0) if args.layer
                  else ResidentChain(w, cfg.num_attention_heads * cfg.head_dim, grid, num_warps=warps, preload=0))

        def stages(runner=runner):
            runner.h.copy_(h0)
            runner.run_stages()

        stages()
        torch.cuda.synchronize()
        err = check(runner.h, f"stages {grid} x {warps}")
        rows.append({"arm": "stages", "programs": grid, "num_warps": warps, "ms": pp._graph_ms(stages),
                     "max_rel_error": err})
        print(f"a launch a stage, {grid} programs x {warps} warps: {rows[-1]['ms']:.3f} ms", flush=True)
        save()
    for grid, warps, preload in itertools.product(grids, args.warps, args.preload):
        detail = {"programs": grid, "num_warps": warps, "preload": preload}
        runner = (ResidentLayer(w, grid, pos, num_warps=warps, preload=preload) if args.layer
                  else ResidentChain(w, cfg.num_attention_heads * cfg.head_dim, grid, num_warps=warps,
                                     preload=preload))
        row = pp._time_persistent(runner, h0, check, detail)
        row["arm"] = "resident"
        row["opaque"] = bool(OPAQUE_ON)
        compiled = getattr(runner, "compiled", None)
        if compiled is not None:  # what ptxas made of it: a spill would put the resident tile in local memory
            row.update(n_regs=compiled.n_regs, n_spills=compiled.n_spills, shared=compiled.metadata.shared)
        rows.append(row)
        print(f"resident {detail}: " + (f"{row['ms']:.3f} ms ({row['timing']})" if "ms" in row else row["error"])
              + (f", {row['n_regs']} registers, {row['n_spills']} spills" if "n_regs" in row else ""), flush=True)
        save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
