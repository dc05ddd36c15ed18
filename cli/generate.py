"""`kernel-search generate`: stream text from a local Qwen3 folder, through a dispatch table or not."""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated

import typer

from cli.common import fail, finite, user_errors

DTYPES = ("bfloat16", "float16", "float32")
TableOption = Annotated[Path | None, typer.Option("--table", help="Dispatch table JSON (kernel-search export). "
                                                  "Without it every op runs the unfused baseline.")]


@contextlib.contextmanager
def warnings_as_lines():
    """Warnings (a table from another GPU, a stale kernel hash) as one `warning: ...` line each on stderr."""
    previous = warnings.showwarning
    warnings.showwarning = lambda message, *a, **kw: typer.echo(f"warning: {message}", err=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", RuntimeWarning)
            yield
    finally:
        warnings.showwarning = previous


def torch_dtype(name: str | None, cuda: bool):
    """bfloat16 on a GPU and float32 on the CPU unless named."""
    import torch

    name = name or ("bfloat16" if cuda else "float32")
    if name not in DTYPES:
        fail(f"unknown dtype {name!r}: use {', '.join(DTYPES)}")
    return getattr(torch, name)


@user_errors
def generate(
    model_dir: Annotated[Path, typer.Argument(help="A local Hugging Face Qwen3 folder (config.json, *.safetensors, "
                                                   "tokenizer files). Nothing is downloaded.", show_default=False)],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The prompt text.")],
    max_tokens: Annotated[int, typer.Option("--max-tokens", "-n", min=1, help="New tokens at most.")] = 128,
    table: TableOption = None,
    temperature: Annotated[float, typer.Option(min=0.0, max=100.0, callback=finite, help="0 is greedy.")] = 0.0,
    top_k: Annotated[int, typer.Option("--top-k", min=0, help="Sample among the k likeliest (0: all).")] = 0,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0, callback=finite,
                                         help="Nucleus sampling mass.")] = 1.0,
    seed: Annotated[int | None, typer.Option(min=0, max=2**63 - 1, help="Seed for sampling.")] = None,
    chat: Annotated[bool, typer.Option("--chat", help="Wrap the prompt in the tokenizer's chat template.")] = False,
    dtype: Annotated[str | None, typer.Option(help="bfloat16, float16 or float32. Default: bfloat16 on a GPU, "
                                               "float32 on the CPU.")] = None,
):
    """Generate text from a local Qwen3 model, streaming it as it comes; decode steps replay CUDA graphs
    on a GPU. With --table, each fusion site runs the kernel the table picked for its batch size."""
    import torch

    from cli.tokenizer import Tokenizer
    from qwen3.dispatch import Dispatcher
    from qwen3.generate import Generator, SamplingParams
    from qwen3.loader import load_config

    config = load_config(model_dir)  # a missing or foreign folder fails here, before the tokenizer's own error
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    sampling = SamplingParams(temperature, top_k, top_p)
    with warnings_as_lines():
        tokenizer = Tokenizer(model_dir)
        if chat:
            ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)
        else:
            ids = tokenizer.encode(prompt)
        if not ids:
            fail("the prompt encodes to no tokens")
        if max(ids) >= config.vocab_size:  # the embedding lookup would fail with an index error
            fail(f"the tokenizer gives token id {max(ids)}, beyond the model's vocabulary ({config.vocab_size}): "
                 "tokenizer.json is not this model's")
        room = config.max_position_embeddings - len(ids)
        if room < 1:
            fail(f"the prompt is {len(ids)} tokens: the model's context holds {config.max_position_embeddings}")
        if max_tokens > room:  # the KV cache is sized by it: --max-tokens 10**9 asked for terabytes
            typer.echo(f"warning: --max-tokens lowered to {room}: the model's context holds "
                       f"{config.max_position_embeddings} positions", err=True)
            max_tokens = room
        ops = Dispatcher(table, device=device) if table is not None else None
        model = _load_model(model_dir, torch_dtype(dtype, cuda), device, ops)
        gen = Generator(model, max_batch=1, max_len=len(ids) + max_tokens)
        stream = _TextStream(tokenizer)
        start = time.perf_counter()
        out = gen.generate([ids], max_tokens, sampling, seed=seed, stop_ids=_stop_ids(tokenizer, model_dir),
                           on_token=lambda _, token: stream.push(token))
        stream.flush()
        seconds = time.perf_counter() - start
    plan = model.plan(1)
    fused = sum(choice.arm == "fused" for choice in plan.values())
    typer.echo(f"\n{len(out[0])} tokens in {seconds:.2f} s ({len(out[0]) / seconds:.1f} tokens/s, prefill included); "
               f"decode runs {fused}/{len(plan)} ops fused", err=True)


def _load_model(model_dir: Path, dtype, device: str, ops):
    """load_model, with a damaged weights file as a one-line error (safetensors raises its own type)."""
    from safetensors import SafetensorError

    from qwen3.loader import load_model

    try:
        return load_model(model_dir, dtype=dtype, device=device, ops=ops)
    except SafetensorError as exc:
        raise ValueError(f"{model_dir}: a *.safetensors file is damaged or not one ({exc})") from None


class _TextStream:
    """Prints the text of the tokens so far as it grows; holds back an unfinished UTF-8 character."""

    def __init__(self, tokenizer):
        self.tokenizer, self.tokens, self.shown = tokenizer, [], 0

    def push(self, token: int) -> None:
        self.tokens.append(token)
        text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        if not text.endswith("\ufffd"):
            self._show(text)

    def flush(self) -> None:
        self._show(self.tokenizer.decode(self.tokens, skip_special_tokens=True))

    def _show(self, text: str) -> None:
        sys.stdout.write(text[self.shown:])
        sys.stdout.flush()
        self.shown = len(text)


def _stop_ids(tokenizer, model_dir: Path) -> list[int]:
    """The tokenizer's EOS and generation_config.json's eos_token_id (an int or a list)."""
    import json

    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    path = model_dir / "generation_config.json"
    if path.is_file():
        try:
            raw = json.loads(path.read_text())
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"{path} is not JSON: {str(exc)[:200]}") from None
        eos = raw.get("eos_token_id") if isinstance(raw, dict) else None
        eos = eos if isinstance(eos, list) else [eos]
        ids.update(e for e in eos if isinstance(e, int) and not isinstance(e, bool) and e >= 0)
    return sorted(ids)


def register(app: typer.Typer) -> None:
    app.command()(generate)
