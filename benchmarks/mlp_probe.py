"""Is the MLP faster as one launch (kernel_space.fused_mlp) than as the table's two (rmsnorm_gate_up_silu,
then down_residual)? Issue 10: at Qwen3-0.6B each kernel of a layer pays a fixed cost about the size
of its weight stream, and this fusion removes one a layer.

1. Per model and M, every config of a small hand-made sweep against the table's two launches: the
   fused output checked against the fp64 reference first, then the two arms' CUDA graphs replayed in
   turn (tuner.measure.paired_speedup: A B A B, launches rotating over weight copies > 4x L2).
2. The decode step with the fastest fused config per batch against the committed table alone
   (benchmarks._probe.ab_rounds: arms alternating per cell, rounds): the step is what decides.

    python benchmarks/mlp_probe.py OUT.json --model qwen3-0.6b --table TABLE --ms 1,8,32 --cells 1x256,8x256
"""

from __future__ import annotations

import argparse
import math

import torch

from benchmarks._probe import ab_rounds, table_args, table_model, write_result
from kernel_space._common import TOLERANCE, linear_weight, norm_weight, randn, rel_error
from kernel_space.fused_mlp import fused_mlp, fused_mlp_reference
from qwen3.config import PRESETS
from qwen3.dispatch import Dispatcher
from tuner.measure import COLD_L2_FACTOR, l2_bytes, paired_speedup

EPS = 1e-6


def sweep(hidden: int, m: int) -> list[dict]:
    """Hand-made configs: (BLOCK_I, BLOCK_K, BLOCK_H, warps); BLOCK_K >= hidden loads gate/up whole."""
    if m == 1:
        path, bm = "fma", 1
        shapes = ([(8, 1024, 256, 4), (16, 1024, 256, 4), (16, 1024, 512, 8), (32, 1024, 256, 8), (16, 256, 256, 4),
                   (32, 256, 256, 4), (16, 512, 256, 4), (32, 512, 128, 4)] if hidden <= 1024 else
                  [(32, 512, 256, 4), (64, 512, 256, 4), (64, 256, 256, 4), (32, 1024, 256, 8), (64, 1024, 256, 8),
                   (128, 256, 128, 4), (16, 512, 512, 4)])
    else:
        path, bm = "dot", max(16, 1 << (m - 1).bit_length())
        shapes = ([(16, 256, 256, 4), (32, 256, 256, 4), (32, 128, 128, 4), (64, 128, 128, 4), (32, 256, 128, 8),
                   (16, 128, 256, 4), (64, 256, 256, 8)] if hidden <= 1024 else
                  [(32, 256, 256, 4), (64, 256, 256, 4), (64, 128, 256, 4), (128, 128, 128, 8), (32, 512, 256, 8)])
    return [{"path": path, "BLOCK_M": bm, "BLOCK_I": bi, "BLOCK_K": bk, "BLOCK_H": bh, "num_warps": w, "num_stages": 3}
            for bi, bk, bh, w in shapes]


def weights(hidden: int, inter: int, m: int, copies: int, seed: int = 0) -> list[dict]:
    gen = torch.Generator(device="cuda").manual_seed(seed)
    dt = torch.bfloat16
    return [{"h": randn((m, hidden), dt, "cuda", gen), "norm_w": norm_weight(hidden, dt, "cuda", gen),
             "w_gu": linear_weight(2 * inter, hidden, dt, "cuda", gen),
             "w_d": linear_weight(hidden, inter, dt, "cuda", gen)} for _ in range(copies)]


def op_sweep(model: str, table, ms: list[int], transposed: bool) -> tuple[list[dict], dict[int, dict]]:
    c = PRESETS[model]
    hidden, inter = c.hidden_size, c.intermediate_size
    ops = Dispatcher(table)
    rows, best = [], {}
    for m in ms:
        per_copy = (3 * hidden * inter) * 2
        rot = weights(hidden, inter, m, max(2, math.ceil(COLD_L2_FACTOR * l2_bytes("cuda") / per_copy)))
        for i in rot:
            i["w_dt"] = i["w_d"].t().contiguous()

        def two(i):
            act = ops.rmsnorm_gate_up_silu(i["h"], i["norm_w"], i["w_gu"], EPS)
            return (ops.down_residual(act, i["h"], i["w_d"]),)

        ref = fused_mlp_reference(rot[0]["h"], rot[0]["norm_w"], rot[0]["w_gu"], rot[0]["w_d"], EPS)
        err_two = rel_error(two(rot[0])[0], ref)
        for cfg in sweep(hidden, m):
            for t in ((False, True) if transposed else (False,)):
                def one(i, cfg=cfg, t=t):
                    return (fused_mlp(i["h"], i["norm_w"], i["w_gu"], i["w_d"], cfg, EPS,
                                      w_down_t=i["w_dt"] if t else None),)
                row = {"model": model, "m": m, "config": cfg, "w_down_t": t, "err_two": err_two}
                try:
                    err = rel_error(one(rot[0])[0], ref)
                    row["err"] = err
                    if err > TOLERANCE[torch.bfloat16]:
                        row["status"] = "wrong"
                    else:
                        ratio, t_one, t_two = paired_speedup(one, two, rot)
                        row.update(status="ok", speedup=ratio, fused_us=t_one.median_us, two_us=t_two.median_us)
                        if ratio > best.get(m, {}).get("speedup", 0):
                            best[m] = {"config": cfg, "w_down_t": t, "speedup": ratio}
                except Exception as e:  # a config that cannot compile or run is a row
                    row.update(status="error", error=f"{type(e).__name__}: {str(e)[-600:]}")
                rows.append(row)
                print(f"{model} M={m} {cfg['path']} BI={cfg['BLOCK_I']} BK={cfg['BLOCK_K']} BH={cfg['BLOCK_H']} "
                      f"w={cfg['num_warps']} T={int(t)}: {row['status']} err {row.get('err', float('nan')):.1e} "
                      f"(two {err_two:.1e}) fused {row.get('fused_us', float('nan')):.2f} us, two "
                      f"{row.get('two_us', float('nan')):.2f} us, {row.get('speedup', float('nan')):.3f}x", flush=True)
    return rows, best


def diagnose(model: str, m: int, cfg: dict, repeats: int = 4) -> list[dict]:
    """One config's error against the fp64 reference, launched `repeats` times on the same inputs (an
    error that changes between launches is a race, one that does not is arithmetic)."""
    c = PRESETS[model]
    i = weights(c.hidden_size, c.intermediate_size, m, 1)[0]
    ref = fused_mlp_reference(i["h"], i["norm_w"], i["w_gu"], i["w_d"], EPS)
    errs = []
    for _ in range(repeats):
        out = fused_mlp(i["h"], i["norm_w"], i["w_gu"], i["w_d"], cfg, EPS)
        torch.cuda.synchronize()
        errs.append(rel_error(out, ref))
    rows = (out.float() - ref.float()).abs().amax(dim=1).tolist()
    print(f"diagnose {model} M={m} {cfg}: errors {[f'{e:.2e}' for e in errs]}, worst per row "
          f"{[f'{r:.2e}' for r in rows]}", flush=True)
    return [{"model": model, "m": m, "config": cfg, "errors": errs, "row_max_abs": rows}]


def patch(best: dict[int, dict]):
    """(setup for the table arm, setup for the fused arm): Qwen3MLP.forward as it is, or the fused
    launch at every M that `best` has a config for."""
    from qwen3.model import Qwen3MLP

    original = Qwen3MLP.forward

    def fused_forward(self, h, norm):
        b = best.get(h.shape[0])
        if b is None:
            return original(self, h, norm)
        return fused_mlp(h, norm.weight, self.gate_up_proj.weight, self.down_proj.weight, b["config"], self.eps,
                         w_down_t=self._wdt if b["w_down_t"] else None)

    def table_arm():
        Qwen3MLP.forward = original

    def fused_arm():
        Qwen3MLP.forward = fused_forward

    return table_arm, fused_arm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    table_args(parser, "qwen3-0.6b", "1x256,8x256,32x256")
    parser.add_argument("--ms", default="1,8,32")
    parser.add_argument("--transposed", action="store_true", help="also time Wd read from a transposed copy")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--diagnose", action="store_true", help="first, repeated launches of a few configs")
    args = parser.parse_args()
    ms = [int(x) for x in args.ms.split(",")]
    diag = []
    if args.diagnose:
        hidden = PRESETS[args.model].hidden_size
        for m, path, bm, bi, bk, bh in ((8, "dot", 16, 32, 256, 256), (16, "dot", 16, 32, 256, 256),
                                        (8, "fma", 8, 32, 256, 64), (1, "fma", 1, 32, 256, 256),
                                        (8, "dot", 16, 32, 256, 32)):
            cfg = {"path": path, "BLOCK_M": bm, "BLOCK_I": bi, "BLOCK_K": min(bk, hidden), "BLOCK_H": bh,
                   "num_warps": 4, "num_stages": 3}
            try:
                diag += diagnose(args.model, m, cfg)
            except Exception as e:  # a config that cannot compile or run is a row
                print(f"diagnose M={m} {cfg}: {type(e).__name__}: {str(e)[-600:]}", flush=True)
    rows, best = op_sweep(args.model, args.table, ms, args.transposed)
    print({m: (b["config"], b["w_down_t"], round(b["speedup"], 3)) for m, b in best.items()}, flush=True)
    steps = []
    if best and args.cells:
        model = table_model(args.model, args.table)
        if any(b["w_down_t"] for b in best.values()):
            for layer in model.model.layers:
                layer.mlp._wdt = layer.mlp.down_proj.weight.t().contiguous()
        table_arm, fused_arm = patch(best)
        steps = ab_rounds(model, args.model, args.cells, args.rounds, [("table", table_arm), ("fused_mlp", fused_arm)],
                          "arm")
        table_arm()
    write_result(args.out, model=args.model, table=str(args.table), diagnose=diag, ops=rows,
                 best={str(m): b for m, b in best.items()},
                 steps=steps)


if __name__ == "__main__":
    main()
