"""Does reading the position before PDL's wait shorten decode attention? The loop path (kv=loop) reads
the sequence's position after the wait, so its first K/V loads wait for one more round trip after the
kernel ahead completes; the kv=early path already reads it before (positions are written before a
step's first kernel, _attend_early's docstring). A variant module, built here from
kernel_space/decode_attention.py's text with the position read moved ahead of the wait in the main
kernel, the prep kernel and the combine kernel, is timed beside the module as it is.

    python3 benchmarks/pos_early_probe.py OUT.json [--cells qwen3-0.6b:1:8192,...] [--rounds 3]

Per cell: both modules' default plan (attention_plan, a prepared q, as attn_bench) and, where the cell
allows, plan_from_qkv's config through decode_attention_prep (the model's launch); each output checked
against the other module's (bitwise equal expected), then timed as attn_bench times (KV cold in L2,
one CUDA graph, median), the two modules alternating for --rounds rounds."""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._probe import cold_inputs, parse_cell, write_result
from benchmarks.attn_bench import copy_bandwidth, time_graph
from kernel_space import decode_attention as da

ROOT = Path(__file__).resolve().parents[1]

# (old, new) pairs applied to decode_attention.py's text, each exactly once.
EDITS = (
    # decode_attention_kernel, kv=loop: the position first, then the wait.
    ("""        _enter(kc_ptr, vc_ptr, pos_ptr, first_row, seq, unit, split, SPLITS, L, pf_slots, stride_kb, stride_kl,
               stride_kh, stride_vb, stride_vl, stride_vh, G, HPU, BLOCK_N, KV_LINES, PDL, PREFETCH)
        lo, hi, n_active = _split_bounds(_length(tl.load(pos_ptr + seq), L), split, SPLITS, BLOCK_N)""",
     """        pos_early = tl.load(pos_ptr + seq)
        _enter(kc_ptr, vc_ptr, pos_ptr, first_row, seq, unit, split, SPLITS, L, pf_slots, stride_kb, stride_kl,
               stride_kh, stride_vb, stride_vl, stride_vh, G, HPU, BLOCK_N, KV_LINES, PDL, PREFETCH)
        lo, hi, n_active = _split_bounds(_length(pos_early, L), split, SPLITS, BLOCK_N)"""),
    # decode_attention_prep_kernel, kv=loop.
    ("""        _enter(kc_ptr, vc_ptr, pos_ptr, first_row, seq, unit, split, SPLITS, L, pf_slots, stride_kb, stride_kl,
               stride_kh, stride_vb, stride_vl, stride_vh, G, HPU, BLOCK_N, KV_LINES, PDL, PREFETCH)
        pos_in = tl.load(pos_ptr + seq)""",
     """        pos_in = tl.load(pos_ptr + seq)
        _enter(kc_ptr, vc_ptr, pos_ptr, first_row, seq, unit, split, SPLITS, L, pf_slots, stride_kb, stride_kl,
               stride_kh, stride_vb, stride_vl, stride_vh, G, HPU, BLOCK_N, KV_LINES, PDL, PREFETCH)"""),
    # the combine kernel.
    ("""    if PDL:
        pdl_enter(PDL)
    _, _, n_active = _split_bounds(_length(tl.load(pos_ptr + seq), L), 0, SPLITS, BLOCK_N)""",
     """    pos_early = tl.load(pos_ptr + seq)
    if PDL:
        pdl_enter(PDL)
    _, _, n_active = _split_bounds(_length(pos_early, L), 0, SPLITS, BLOCK_N)"""),
)


def variant_module():
    text = (ROOT / "kernel_space/decode_attention.py").read_text()
    for old, new in EDITS:
        if text.count(old) != 1:
            raise SystemExit(f"edit does not apply once: {old.splitlines()[0]!r}")
        text = text.replace(old, new)
    path = Path(tempfile.mkdtemp()) / "decode_attention_pos_early.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("decode_attention_pos_early", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def prep_inputs(problem, copies: int) -> list[dict]:
    """decode_attention_prep's inputs (make_prep_inputs), as many copies as the cold rotation holds."""
    gen = torch.Generator(device="cuda").manual_seed(1)
    return [da.make_prep_inputs(problem, "cuda", gen) for _ in range(copies)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--cells", default="qwen3-0.6b:1:8192,qwen3-0.6b:1:16384,qwen3-0.6b:1:32768,qwen3-8b:1:8192,"
                                      "qwen3-0.6b:1:2048,qwen3-0.6b:8:8192,qwen3-0.6b:32:2048")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    var = variant_module()
    bandwidth = copy_bandwidth()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    rows = []
    for cell in args.cells.split(","):
        problem = parse_cell(cell)
        floor = problem.kv_bytes() / bandwidth * 1e6
        inputs = cold_inputs(problem)
        shape = (problem.batch, problem.heads, problem.kv_heads, problem.head_dim, problem.context, sms)
        arms = [("q", da.attention_plan(*shape), inputs, "decode_attention"),
                ("qkv", da.plan_from_qkv(*shape), prep_inputs(problem, len(inputs)), "decode_attention_prep")]
        for kind, cfg, ins, fn in arms:
            if da.kv_of(cfg) != "loop":
                continue  # the early path reads the position before the wait already
            a = partial(getattr(da, fn), config=cfg)
            b = partial(getattr(var, fn), config=cfg)
            if kind == "qkv":  # the prep writes the new slot: compare on fresh copies of one input
                outs = []
                for f in (a, b):
                    one = {**ins[0], "k_cache": ins[0]["k_cache"].clone(), "v_cache": ins[0]["v_cache"].clone()}
                    outs.append(f(**one).float())
            else:
                outs = [a(**ins[0]).float(), b(**ins[0]).float()]
            same = torch.equal(outs[0], outs[1])
            times = {"now": [], "pos_early": []}
            for _ in range(args.rounds):
                times["now"].append(time_graph(a, ins)[0])
                times["pos_early"].append(time_graph(b, ins)[0])
            now, early = statistics.median(times["now"]), statistics.median(times["pos_early"])
            rows.append({"cell": cell, "launch": fn, "config": cfg, "bitwise_equal": same, "floor_us": floor,
                         "now_us": times["now"], "pos_early_us": times["pos_early"]})
            print(f"{cell:22} {kind:3} S{cfg['SPLITS']} BN{cfg['BLOCK_N']} prep {cfg['prep']}: now {now:7.2f} us "
                  f"({floor / now:4.0%}), position before the wait {early:7.2f} ({floor / early:4.0%}) "
                  f"{early / now - 1:+.1%}{'' if same else ' OUTPUTS DIFFER'}", flush=True)
        del inputs
        torch.cuda.empty_cache()
    write_result(args.out, bandwidth=bandwidth, sms=sms, rows=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
