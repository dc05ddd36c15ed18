"""Which launches make PDL slow a decode step? PDL kept on for every launch but the named ones,
rounds alternating, on one machine (decode tok/s of the table arm, qwen3.bench.bench_cell).

    python3 benchmarks/pdl_probe.py OUT.json --model qwen3-8b --table T.json --cells 32x256

At Qwen3-8B batch 32 x 256 the step ran 4.2% faster with PDL off (KERNEL_SEARCH_PDL=0; env_ab.py,
eleventh session) while 0.6B ran 13-26% faster with it. A variant turns PDL off for some launch
sites only, by wrapping pdl_launch_args where each module holds it and asking who called it:
- gemm: the fused GEMM (kernel_space._gemm._launch_gemm); gemm>W: only where its grid is more than W
  programs;
- gemm_aux: the split-K reduction and the norm prepass;
- attn: decode attention and its combine, and qk_norm_rope_cache.
`all_on` is the launchers as they are: since the eleventh session they launch large GEMM grids over
large weights without PDL themselves (kernel_space._gemm.PDL_MAX_PROGRAMS_PER_SM); run with
KERNEL_SEARCH_PDL=all for PDL on every launch, as the session's run (pdl_probe_8b.json) had it.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._probe import ab_rounds, table_args, table_model, write_result
from kernel_space import _gemm, decode_attention, qk_norm_rope_cache

REAL = _gemm.pdl_launch_args
SITES = {"gemm": {"_launch_gemm"}, "gemm_aux": {"_launch_reduce", "_launch_prepass"},
         "attn": {"_launch_args", "_launch_combine", "qk_norm_rope_cache"}}
VARIANTS = ("all_on", "all_off", "gemm", "gemm>132", "gemm>264", "gemm_aux", "attn")


def patched(variant: str):
    if variant == "all_on":
        return REAL
    site, _, wide = variant.partition(">")

    def pdl_launch_args(device, programs=None, weight_bytes=0):
        caller = sys._getframe(1).f_code.co_name
        off = variant == "all_off" or caller in SITES[site]
        if off and wide and programs is not None and programs <= int(wide):
            off = False
        return {} if off else REAL(device, programs, weight_bytes)
    return pdl_launch_args


def use(variant: str) -> None:
    fn = patched(variant)
    for module in (_gemm, decode_attention, qk_norm_rope_cache):
        module.pdl_launch_args = fn


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    table_args(p, "qwen3-8b", "32x256")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    model = table_model(args.model, args.table)
    arms = [(variant, partial(use, variant)) for variant in args.variants.split(",")]
    try:
        rows = ab_rounds(model, args.model, args.cells, args.rounds, arms, "pdl_off")
    finally:
        use("all_on")
    write_result(args.out, model=args.model, table=str(args.table), rows=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
