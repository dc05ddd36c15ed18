"""The end-to-end bench's CPU-side pieces: how a batch of prompts is split for prefill, and the KV
cache given back between cells (the GPU run itself is in test_gpu.py)."""

import pytest
import torch

from qwen3.bench import PREFILL_TOKENS, prefill_groups, random_prompts, release_kv_cache
from qwen3.config import PRESETS
from qwen3.loader import random_weights


@pytest.mark.parametrize("batch, context, groups", [
    (1, 256, [(0, 1)]),
    (32, 256, [(0, 32)]),  # 8k tokens: one forward
    (32, 2048, [(0, 16), (16, 16)]),
    (3, 20000, [(0, 1), (1, 1), (2, 1)]),
    (8, 32768, [(i, 1) for i in range(8)]),
    (1, 40000, [(0, 1)]),  # a prompt longer than the budget still goes whole
    (5, 16384, [(0, 2), (2, 2), (4, 1)]),
])
def test_prefill_groups_cover_every_row_once_within_the_token_budget(batch, context, groups):
    assert prefill_groups(batch, context) == groups
    assert all(n * context <= max(PREFILL_TOKENS, context) for _, n in groups)


def test_prefill_groups_refuse_empty_shapes():
    with pytest.raises(ValueError, match="got 0, 5"):
        prefill_groups(0, 5)


def test_release_kv_cache_drops_every_reference():
    model = random_weights(PRESETS["qwen3-tiny"], torch.float32, "cpu")
    model.allocate_kv_cache(2, 16)
    held = [m for m in model.modules() if getattr(m, "k_cache", None) is not None]
    assert len(held) == PRESETS["qwen3-tiny"].num_hidden_layers
    release_kv_cache(model)
    assert model.kv_cache is None and all(m.k_cache is None and m.v_cache is None for m in held)


def test_random_prompts_are_the_same_for_every_arm():
    a, b = random_prompts(2, 9, 100, seed=3, device="cpu"), random_prompts(2, 9, 100, seed=3, device="cpu")
    assert a.shape == (2, 9) and torch.equal(a, b) and int(a.max()) < 100


def test_bench_arms_throws_a_first_unfused_cell_away(monkeypatch):
    """A process's first cell is not like the later ones (benchmarks/README.md, seventh session): every
    bench_arms call runs one short unfused cell before the arms, and returns only the arms' rows."""
    import qwen3.bench as bench
    from qwen3.bench import BenchRow
    from qwen3.config import PRESETS
    from qwen3.dispatch import Dispatcher

    cells = []

    class Model:
        ops = None

        def set_dispatcher(self, ops):
            self.ops = ops

    def bench_cell(model, arm, batch, context, output_len, repeats=3, seed=0, breakdown=False):
        cells.append((arm, model.ops.table is None, batch, context, output_len, repeats))
        return BenchRow(arm, batch, context, prefill_ms=1.0, decode_ms=1.0, tokens_per_s=1.0)

    monkeypatch.setattr(bench.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(bench, "random_weights", lambda *a, **k: Model())
    monkeypatch.setattr(bench, "bench_cell", bench_cell)
    rows = bench.bench_arms(PRESETS["qwen3-0.6b"], [("table", Dispatcher())], [1, 8], [256], 32)
    assert cells == [("thrown away", True, 1, bench.FIRST_CELL_CONTEXT, 8, 1),
                     ("table", True, 1, 256, 32, 3), ("table", True, 8, 256, 32, 3)]
    assert [r.arm for r in rows] == ["table", "table"]


def test_the_breakdown_opens_a_part_around_every_site_of_a_step():
    """--breakdown's parts: each fusion site and the LM head through the dispatcher, the q/k prep and
    attention through their modules (a part nothing opens would read 0 us and its kernels 'other')."""
    from qwen3.bench import PARTS, _PartRanges

    model = random_weights(PRESETS["qwen3-tiny"], torch.float32, "cpu")
    model.allocate_kv_cache(2, 16)
    opened = []
    ranges = _PartRanges(model)
    ranges.begin, ranges.end = opened.append, lambda: None
    with ranges, torch.inference_mode():
        hidden = model(torch.zeros(2, 1, dtype=torch.long), torch.full((2, 1), 3))
        model.compute_logits(hidden.view(2, -1))
    assert set(opened) == set(PARTS) - {"other"}
    release_kv_cache(model)


def test_the_bench_table_shows_attention_only_where_the_table_decides_it():
    """A model whose heads run SDPA whatever the table says gets no attention column: its reason, shown
    once when the model is built, folded into a 22-line cell on an H200 (thirty-third session)."""
    from rich.console import Console

    from cli.bench import _throughput_table
    from qwen3.bench import BenchRow

    def rows(attention):
        return [BenchRow(arm, 1, 128, 1.0, 1.0, 1000.0, plan={"down_residual": "fused"}, attention=attention)
                for arm in ("unfused", "table")]

    def text(table):
        console = Console(width=250, record=True)
        console.print(table)
        return console.export_text()

    fallback = "unfused: PyTorch's SDPA: head_dim 80 is not a power of two: " + "words " * 20
    assert "table attention" not in text(_throughput_table(rows(fallback), "m", "gpu", 8, sdpa_only=True))
    tuned = "fused: M=1 ctx=256"
    shown = text(_throughput_table(rows(tuned), "m", "gpu", 8))
    assert "table attention" in shown and tuned in shown
