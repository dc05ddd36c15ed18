"""What folding decode attention's combine into o_proj would save in the decode step (issue 10: "the
attention's combine folded into o_proj's prologue where that wins"), measured before building it.

    python3 benchmarks/combine_fold_probe.py OUT.json --model qwen3-0.6b --table T.json --cells 1x256,1x2048

Where the attention splits a sequence's cache, its partials (acc, max, sum per split) are combined by
the last program of a unit to arrive (an arrival counter, then a reload of every split from L2) or by a
second kernel. Both end the attention later than its last partial store. Here o_proj's programs combine
the splits themselves: each loads every split's partial of its K slice (the heads it multiplies),
weighs them by the softmax sums as the combine would, rounds to the model's dtype as o would be stored,
and multiplies. Every o_proj program of a K slice repeats that combine (N / BLOCK_N of them), so the fold
trades one dependent round trip for more bytes from L2 in every program.

Arms, rounds alternating (benchmarks._probe.ab_rounds: bench_cell, CUDA graph, median of 3):
- `table`: the step as it runs (the table's GEMM rows, the attention plan of its combine);
- `fold`: the attention with combine=kernel but no combine launched, and o_proj (batch 1, the table's
  own tile, split and warps: fma, one K block a split) reading the partials (fold_o_proj_kernel);
- `fold1`, ...: the same with a --fold-config laid over the table's o_proj config (one head a split,
  say, so that each program combines one head instead of four, with a wider N tile: fewer programs
  repeat each combine);
- `tile1`, ...: the control of each: the table's attention and combine, o_proj with that tile;
- `skip`: the same attention, no combine anywhere (o_proj reads the stale o: wrong tokens, the same
  kernels otherwise): the most a fold could save.
Before the rounds, the fold is checked against the attention's own combine followed by o_proj at every
cell (the fixed-point and the model-dtype stream). Batch 1 only: a table's o_proj at batch 1 is fma with
one K block a split (BLOCK_K = K / SPLIT_K); other configs run as the table says.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kernel_space.decode_attention as da
from kernel_space import _gemm
from kernel_space._gemm import (
    _accumulate,
    _epilogue,
    _reduce_tile,
    _store_partials,
    _w_tile,
    pdl_enter,
)
from kernel_space.decode_attention import _length, _split_bounds
from qwen3.dispatch import Dispatcher, widened


@triton.jit
def fold_o_proj_kernel(part_ptr, ml_ptr, o_ptr, pos_ptr, w_ptr, res_ptr, out_ptr, spart_ptr, count_ptr,
                       N, K, stride_wn, stride_rom, stride_om, SPLITS, L,
                       HD: tl.constexpr, SC: tl.constexpr, ATT_BLOCK_N: tl.constexpr,
                       BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLIT_K: tl.constexpr,
                       LAST_REDUCES: tl.constexpr, ACCUMULATE: tl.constexpr, PDL: tl.constexpr = False,
                       PREFETCH: tl.constexpr = False):
    """out = res + o @ W^T at one row, o combined here from decode attention's split partials ([H, SPLITS,
    HD] and [H, SPLITS, 2] of sequence 0) over the K slice of the program (one BLOCK_K block of whole
    heads), or read from o where the sequence used one split. The epilogues are _gemm's. PREFETCH
    (pdl_launch_args) is unused: a program loads its one weight block before the wait."""
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    offs_m = tl.arange(0, 1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    w, _ = _w_tile(w_ptr, offs_n, offs_k, N, K, stride_wn, False)  # before the wait: weights are never written
    if PDL:
        pdl_enter(PDL)
    k_live = offs_k < K
    _, _, n_active = _split_bounds(_length(tl.load(pos_ptr), L), 0, SPLITS, ATT_BLOCK_N)
    if n_active == 1:
        a = tl.load(o_ptr + offs_k, mask=k_live, other=0.0).to(tl.float32)
    else:
        # The slice's NH whole heads, every split of each: [SC, NH, HD] partials, [SC, NH] maxima and sums.
        NH: tl.constexpr = BLOCK_K // HD
        s = tl.arange(0, SC)[:, None]
        head = pid_k * NH + tl.arange(0, NH)[None, :]
        live = (s < n_active) & (head * HD < K)
        idx = head * SPLITS + s  # [SC, NH]
        m_s = tl.load(ml_ptr + idx * 2, mask=live, other=float("-inf"), cache_modifier=".cg")
        l_s = tl.load(ml_ptr + idx * 2 + 1, mask=live, other=0.0, cache_modifier=".cg")
        d = tl.arange(0, HD)[None, None, :]
        a_s = tl.load(part_ptr + idx[:, :, None] * HD + d, mask=live[:, :, None], other=0.0, cache_modifier=".cg")
        wt = tl.exp2(m_s - tl.max(m_s, axis=0)[None, :])  # a padding head's are NaN: masked below
        a = tl.sum(a_s * wt[:, :, None], axis=0) / tl.sum(l_s * wt, axis=0)[:, None]  # [NH, HD]
        a = tl.reshape(a.to(o_ptr.dtype.element_ty).to(tl.float32), (BLOCK_K,))  # as the combine stores o
        a = tl.where(k_live, a, 0.0)
    acc = tl.sum(a[:, None] * w.to(tl.float32), axis=0)[None, :]
    if ACCUMULATE:
        _accumulate(acc, offs_m, offs_n, 1, N, out_ptr, stride_om, SPLIT_K)
    elif SPLIT_K == 1:
        _epilogue(acc, acc, tl.zeros((1,), tl.float32), offs_m, offs_n, 1, N, K, 0.0, res_ptr, stride_rom, out_ptr,
                  stride_om, False, False, True)
    else:
        _store_partials(spart_ptr, spart_ptr, acc, acc, tl.zeros((1,), tl.float32), pid_k, pid_n, offs_m, offs_n, 1, N,
                        False, False, BLOCK_N, False)
        if LAST_REDUCES:
            tl.debug_barrier()
            arrived = tl.atomic_add(count_ptr + pid_n, 1, sem="acq_rel", scope="gpu")
            if arrived == SPLIT_K - 1:
                tl.store(count_ptr + pid_n, 0)
                _reduce_tile(spart_ptr, spart_ptr, res_ptr, out_ptr, 0, pid_n, 1, N, K, stride_rom, stride_om, 0.0,
                             False, False, True, SPLIT_K, 1, BLOCK_N, False)


def foldable(cfg: dict, k: int) -> bool:
    """A batch-1 config the fold kernel runs: fma, one row, one K block a split, split-K reduced by the
    last program (or one split)."""
    return (cfg.get("impl") == "fused" and cfg["path"] == "fma" and cfg["BLOCK_M"] == 1
            and cfg["BLOCK_K"] * cfg["SPLIT_K"] == k
            and (cfg["SPLIT_K"] == 1 or cfg.get("split_reduce") == "last_program"))


def fold_o_proj(stash: dict, residual: torch.Tensor, w: torch.Tensor, cfg: dict, accumulate: bool) -> torch.Tensor:
    """residual + combine(partials) @ w^T at batch 1 with cfg's tile (in place into a wide stream)."""
    n, k = w.shape
    split, block_n = cfg["SPLIT_K"], cfg["BLOCK_N"]
    tiles = triton.cdiv(n, block_n)
    out = residual if accumulate else torch.empty((1, n), dtype=w.dtype, device=w.device)
    spart = torch.empty((split, 1, n), dtype=torch.float32, device=w.device) if split > 1 and not accumulate else out
    counts = _gemm._counters(w.device, tiles) if split > 1 and not accumulate else out
    _gemm._launcher(fold_o_proj_kernel, (tiles, split))(
        stash["part"], stash["ml"], stash["o"], stash["positions"], w, residual, out, spart, counts,
        n, k, w.stride(0), residual.stride(0), out.stride(0), stash["splits"], stash["L"],
        HD=stash["hd"], SC=triton.next_power_of_2(stash["splits"]), ATT_BLOCK_N=stash["block_n"],
        BLOCK_N=block_n, BLOCK_K=cfg["BLOCK_K"], SPLIT_K=split, LAST_REDUCES=split > 1 and not accumulate,
        ACCUMULATE=accumulate, num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
        **_gemm.pdl_launch_args(w.device, tiles * split, w.numel() * w.element_size()),
    )
    return out


_real_combine = da._launch_combine
_real_o_proj = Dispatcher.o_proj_residual
_mode = {"arm": "table", "over": {}}
_stash: list = []


def _combines() -> bool:
    """Whether the arm combines as the table does (table, tile<i>), else it leaves the partials to o_proj."""
    return _mode["arm"] == "table" or _mode["arm"].startswith("tile")


def _launch_combine(grid, buffers, positions, problem, config, meta):
    """The fold and skip arms: keep the partials for o_proj instead of combining them."""
    if _combines() or config["SPLITS"] == 1 or meta["LAST_COMBINES"] or problem.batch != 1:
        return _real_combine(grid, buffers, positions, problem, config, meta)
    o, part, ml = buffers
    _stash.append({"o": o, "part": part, "ml": ml, "positions": positions, "splits": config["SPLITS"],
                   "L": problem.context, "block_n": config["BLOCK_N"], "hd": problem.head_dim})
    return None


def _o_proj(self, x, residual, w):
    stash = _stash.pop() if _stash else None
    choice = self._run("o_proj_residual", x, w)
    cfg = {**choice.config, **_mode["over"]} if choice.arm == "fused" else None
    if _mode["arm"].startswith("tile") and cfg is not None and x.shape[0] == 1:
        from kernel_space.o_proj_residual import o_proj_residual

        return o_proj_residual(x, residual, w, cfg, widened(residual, w))
    if stash is None or not _mode["arm"].startswith("fold") or cfg is None or not foldable(cfg, w.shape[1]):
        return _real_o_proj(self, x, residual, w)
    return fold_o_proj(stash, residual, w, cfg, widened(residual, w))


def attention_configs(model) -> None:
    """The plan, with combine=kernel in the fold and skip arms (their combine is then never launched)."""
    def pick(problem):
        plan = da.default_plan(problem, torch.device("cuda"), from_qkv=True)
        return plan if _combines() or plan["SPLITS"] == 1 else {**plan, "combine": "kernel"}
    model.set_attention_config(pick)


def check(problem: da.AttentionProblem, w: torch.Tensor, cfg: dict, accumulate: bool, device) -> float:
    """The fold against the attention's own combine, then the table's o_proj, at one cell: relative error."""
    from kernel_space.o_proj_residual import o_proj_residual

    gen = torch.Generator(device=device).manual_seed(1)
    inputs = da.make_prep_inputs(problem, device, gen)
    plan = {**da.default_plan(problem, torch.device(device), from_qkv=True), "combine": "kernel"}
    if plan["SPLITS"] == 1:
        return 0.0
    n = w.shape[0]
    if accumulate:
        res = torch.randint(-(1 << 26), 1 << 26, (1, n), dtype=torch.int64, device=device)
    else:
        res = torch.randn((1, n), dtype=w.dtype, device=device, generator=gen)
    args = [inputs[key] for key in ("qkv", "q_norm_w", "k_norm_w", "cos", "sin", "eps", "k_cache", "v_cache",
                                    "positions", "scale")]
    o = da.decode_attention_prep(*args, 0, plan)
    want = o_proj_residual(o.view(1, -1), res.clone(), w, cfg, accumulate)
    _mode["arm"] = "fold"
    try:
        da.decode_attention_prep(*args, 0, plan)  # writes the cache's new slot again, as the first call did
        got = fold_o_proj(_stash.pop(), res.clone(), w, cfg, accumulate)
    finally:
        _mode["arm"] = "table"
    want, got = want.double(), got.double()
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()


def main(argv=None) -> int:
    from benchmarks._probe import ab_parser, ab_rounds, ab_summary, cells, table_model, write_result
    from qwen3.model import STREAM_ENV

    p = ab_parser(__doc__, rounds=3)
    p.add_argument("--fold-config", action="append", default=[], help="an arm fold<i>: the fold with this JSON laid "
                   "over the table's o_proj config (e.g. one head a split: BLOCK_K 128, SPLIT_K 16)")
    args = p.parse_args(argv)
    model = table_model(args.model, args.table)
    da._launch_combine = _launch_combine
    Dispatcher.o_proj_residual = _o_proj
    attention_configs(model)
    c = model.config
    w = model.model.layers[0].self_attn.o_proj.weight
    choice = model.ops._run("o_proj_residual", torch.empty((1, w.shape[1]), device=w.device, dtype=w.dtype), w)
    if choice.arm != "fused" or not foldable(choice.config, w.shape[1]):
        raise SystemExit(f"the table's o_proj at batch 1 is not foldable: {choice.config}")
    checks = []
    for batch, context in cells(args.cells):
        problem = da.AttentionProblem(batch, c.num_attention_heads, c.num_key_value_heads, c.head_dim,
                                      context + args.output_len, "bfloat16")
        for accumulate in (False, True):
            err = check(problem, w, choice.config, accumulate, "cuda")
            checks.append({"batch": batch, "context": context, "accumulate": accumulate, "rel_err": err})
            print(f"check {batch}x{context} {'fixed-point stream' if accumulate else 'model dtype'}: "
                  f"rel. error {err:.2e}", flush=True)
            if not err < 1e-2:
                raise SystemExit(f"fold wrong at {batch}x{context}: rel. error {err:.2e}")
    overs = [json.loads(c) for c in args.fold_config]
    for over in overs:
        cfg = {**choice.config, **over}
        if not foldable(cfg, w.shape[1]) or cfg["BLOCK_K"] % c.head_dim:
            raise SystemExit(f"--fold-config {over}: not a foldable batch-1 config of whole heads: {cfg}")
        for batch, context in cells(args.cells):
            problem = da.AttentionProblem(batch, c.num_attention_heads, c.num_key_value_heads, c.head_dim,
                                          context + args.output_len, "bfloat16")
            for accumulate in (False, True):
                err = check(problem, w, cfg, accumulate, "cuda")
                checks.append({"batch": batch, "context": context, "accumulate": accumulate, "config": cfg,
                               "rel_err": err})
                print(f"check {batch}x{context} {over} {'fixed' if accumulate else 'model'}: rel. error {err:.2e}",
                      flush=True)
                if not err < 1e-2:
                    raise SystemExit(f"fold {over} wrong at {batch}x{context}: rel. error {err:.2e}")
    names = ["table", "fold"] + [f"{kind}{i + 1}" for i in range(len(overs)) for kind in ("tile", "fold")] + ["skip"]
    over_of = {f"{kind}{i + 1}": over for i, over in enumerate(overs) for kind in ("tile", "fold")}
    arms = [(arm, lambda arm=arm: _mode.update(arm=arm, over=over_of.get(arm, {}))) for arm in names]
    try:
        rows = ab_rounds(model, args.model, args.cells, args.rounds, arms, "arm", args.output_len)
    finally:
        _mode.update(arm="table", over={})
    summary = [ab_summary(args.model, rows, args.cells, "arm", "table", new) for new in names[1:]]
    write_result(args.out, model=args.model, table=str(args.table), stream=os.environ.get(STREAM_ENV, "auto"),
                 o_proj_config=choice.config, fold_configs=over_of, checks=checks, rows=rows, summary=summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
