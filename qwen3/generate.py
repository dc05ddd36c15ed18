"""Generation: prefill, then one token per sequence per step, greedy or sampled, streamed.

On CUDA every decode step replays a CUDA graph captured per batch bucket (kernel_space.buckets'
DECODE_BUCKETS, the sizes the dispatch table is tuned at); a batch is padded up to its bucket. The
graph ends with the greedy token of every row (the logits' argmax), so greedy decoding
(decode_greedy) copies out B token ids a step instead of B x vocab logits and arg-maxes nothing
outside the graph, as a torch.compile'd decode loop does. With KERNEL_SEARCH_FUSED_ARGMAX=1, where the
table fuses lm_head at a bucket, greedy decoding replays a second graph of the same step whose LM head
keeps each tile's best logit and column in its epilogue (Dispatcher.lm_head_greedy): the logits are
never written (within noise of the argmax of the logits on an H100, so off by default).
Before capture the dispatcher's plan for the bucket is resolved and kept (Generator.plans, and
decode attention's choice for the bucket over the allocated cache in Generator.attention), so a
graph runs exactly the kernels the plan reports. On the CPU steps run eagerly.

A prefill of up to PREFILL_GRAPH_TOKENS tokens replays a CUDA graph too: eagerly, a short prompt's
forward is bound by the host launching ~20 kernels a layer (20 ms at 0.6B for 128 tokens, where the
GPU needs 2). Its graph is captured per (prompts, padded length, first cache row) on first use, the
prompt padded at its end up to padded_length: causal attention keeps the pad tokens out of every
real token's result, and the cache slots they write lie past the prompt, where each decode step
writes its slot before reading it. Longer prefills run eagerly: their kernels outweigh the launches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from kernel_space.buckets import DECODE_BUCKETS, bucket_for
from qwen3.dispatch import Choice
from qwen3.model import Qwen3ForCausalLM

PREFILL_GRAPH_TOKENS = 8192  # prompts x padded length at most for a prefill graph
PREFILL_GRAPHS = 16  # distinct prefill shapes captured per Generator at most; others run eagerly


def padded_length(tokens: int, max_len: int) -> int:
    """The length a prefill graph of `tokens`-token prompts runs at: rounded up to an eighth of the
    next power of two (16 at least), so eight graphs serve each octave of lengths and less than a
    quarter of a prompt's tokens are padding; never past the cache (max_len slots)."""
    step = max(16, (1 << (tokens - 1).bit_length()) // 8)
    return min(-(-tokens // step) * step, max_len)


@dataclass
class _PrefillGraph:
    graph: torch.cuda.CUDAGraph
    ids: torch.Tensor  # [prompts, padded length], the graph's input
    last: torch.Tensor  # [1]: the index of the prompts' last real token
    # [prompts, padded length]: 0 .. length-1. Held here because the graph reads it at every replay:
    # a tensor the capture used but nothing holds is freed when the capture returns, and the next
    # allocation that reuses its memory changes what a replay reads (the first replay, before any
    # such allocation, was right; later ones wrote K/V at garbage positions).
    positions: torch.Tensor
    logits: torch.Tensor  # [prompts, vocab], the graph's output


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """temperature 0 is greedy (argmax); top_k 0 and top_p 1 leave the distribution whole."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self):
        if not 0 <= self.temperature < math.inf:  # NaN too
            raise ValueError(f"temperature must be finite and >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


def sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token id per row of logits [B, vocab]."""
    logits = logits.float()
    if params.temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / params.temperature
    if params.top_k:
        kth = torch.topk(logits, min(params.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token once the tokens ranked above it already hold top_p of the mass (the first stays).
        drop = probs.cumsum(dim=-1) - probs > params.top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    probs = logits.softmax(dim=-1)
    # CUDA's multinomial asserts on the device where a probability is NaN, which ends the process's CUDA
    # context; a row is NaN when its logits hold NaN or +inf. The tokens go to the host next anyway.
    if not bool(torch.isfinite(probs).all()):
        raise ValueError("the logits hold NaN or infinity, so there is nothing to sample from (are the model's "
                         "weights finite?)")
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class Generator:
    """Runs a Qwen3ForCausalLM over up to max_batch sequences of up to max_len tokens each.

    cuda_graphs: None captures decode graphs when the model is on CUDA. batch_sizes: capture only the
    buckets serving these batch sizes (each bucket compiles its own kernels); default every bucket up
    to max_batch's. prefill_graphs: None (or True) replays short prefills as CUDA graphs wherever decode
    runs graphs (module docstring); False prefills eagerly. Construction allocates the KV cache (and
    captures the decode graphs), so build one Generator per (model, dispatcher).
    """

    def __init__(self, model: Qwen3ForCausalLM, max_batch: int, max_len: int, cuda_graphs: bool | None = None,
                 batch_sizes: Sequence[int] | None = None, prefill_graphs: bool | None = None):
        if max_batch < 1 or max_len < 2:
            raise ValueError(f"max_batch must be >= 1 and max_len >= 2, got {max_batch}, {max_len}")
        self.model, self.max_batch, self.max_len = model, max_batch, max_len
        self.device = model.device
        self.use_graphs = self.device.type == "cuda" if cuda_graphs is None else cuda_graphs
        if self.use_graphs and self.device.type != "cuda":
            raise ValueError("CUDA graphs need the model on a CUDA device")
        self.prefill_graphs = self.use_graphs if prefill_graphs is None else prefill_graphs and self.use_graphs
        top = bucket_for(max_batch, DECODE_BUCKETS)
        wanted = {bucket_for(b, DECODE_BUCKETS) for b in batch_sizes or ()} or set(DECODE_BUCKETS)
        self.buckets = tuple(b for b in DECODE_BUCKETS if b <= top and b in wanted) if self.use_graphs else ()
        # Padded rows of a bucket's graph write their K/V into cache rows no sequence uses.
        model.allocate_kv_cache(max(max_batch, top) if self.use_graphs else max_batch, max_len)
        self.plans: dict[int, dict] = {}
        self.attention: dict[int, Choice] = {}  # bucket -> what decode attention's graph runs
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._logits: dict[int, torch.Tensor] = {}
        self._greedy: dict[int, torch.Tensor] = {}  # bucket -> the graph's argmax of its logits [bucket]
        # bucket -> a graph of the step that ends in lm_head's fused argmax (no logits written), where
        # the model fuses it at that bucket (Qwen3ForCausalLM.fuses_argmax); _greedy then holds its ids.
        self._greedy_graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._prefill_graphs: dict[tuple[int, int, int], _PrefillGraph] = {}
        self._prefill_pool = None
        if self.use_graphs:
            self._capture()

    @torch.inference_mode()
    def _capture(self) -> None:
        size = self.buckets[-1]
        self._ids = torch.zeros((size, 1), dtype=torch.long, device=self.device)
        self._pos = torch.zeros((size, 1), dtype=torch.long, device=self.device)
        pool = None
        for b in reversed(self.buckets):  # largest first: the smaller graphs reuse its memory pool
            self.plans[b] = self.model.plan(b)
            self.attention[b] = self.model.attention_choice(b)
            # One eager run compiles the Triton kernels and allocates split-K counters outside capture.
            self._step(self._ids[:b], self._pos[:b])
            torch.cuda.synchronize(self.device)
            graph = torch.cuda.CUDAGraph()
            fused_argmax = self.model.fuses_argmax(b)
            with torch.cuda.graph(graph, pool):
                self._logits[b] = self._step(self._ids[:b], self._pos[:b])
                if not fused_argmax:  # else the greedy graph below gives the tokens: no argmax here
                    self._greedy[b] = self._logits[b].argmax(-1)
            pool = graph.pool() if pool is None else pool
            self._graphs[b] = graph
            if fused_argmax:
                self._step_greedy(self._ids[:b], self._pos[:b])  # compiles outside capture
                torch.cuda.synchronize(self.device)
                greedy = torch.cuda.CUDAGraph()
                with torch.cuda.graph(greedy, pool):
                    self._greedy[b] = self._step_greedy(self._ids[:b], self._pos[:b])
                self._greedy_graphs[b] = greedy
        torch.cuda.synchronize(self.device)

    def _step(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model.compute_logits(self.model(ids, positions))

    def _step_greedy(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model.compute_greedy(self.model(ids, positions))

    @torch.inference_mode()
    def decode_step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """tokens, positions [B] (B <= max_batch; sequence b is cache row b) -> logits [B, vocab], a
        tensor of its own (a graph's output buffer is rewritten by the next step, so it is copied)."""
        b = tokens.shape[0]
        if not self.use_graphs:
            return self._step(tokens[:, None], positions[:, None])
        bucket = self._replay(tokens, positions)
        return self._logits[bucket][:b].clone()

    @torch.inference_mode()
    def decode_greedy(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """decode_step's step, greedy: the argmax of each row's logits, [B] token ids (int64), a tensor
        of its own. The argmax runs inside the graph (first index of the largest logit, as
        sample(logits, SamplingParams()) picks)."""
        b = tokens.shape[0]
        if not self.use_graphs:
            return self._step_greedy(tokens[:, None], positions[:, None])
        bucket = self._replay(tokens, positions, greedy=True)
        return self._greedy[bucket][:b].clone()

    def _replay(self, tokens: torch.Tensor, positions: torch.Tensor, greedy: bool = False) -> int:
        """Write the step's inputs (padded rows zeroed) and replay its bucket's graph (greedy: the graph
        that ends in the fused argmax, where the bucket has one); the bucket."""
        b = tokens.shape[0]
        bucket = bucket_for(b, self.buckets)
        self._ids[:b, 0] = tokens
        self._pos[:b, 0] = positions
        if b < bucket:
            self._ids[b:bucket].zero_()
            self._pos[b:bucket].zero_()
        graph = self._greedy_graphs.get(bucket) if greedy else None
        (graph or self._graphs[bucket]).replay()
        return bucket

    @torch.inference_mode()
    def prefill_rows(self, ids: torch.Tensor, first_row: int = 0, graph: bool = True) -> torch.Tensor:
        """Prompts ids [n, T] of one length into cache rows first_row .. first_row + n -> the logits of
        each one's last token [n, vocab], a tensor of its own. A CUDA graph serves it where it can
        (see the module docstring) unless graph is False, else an eager forward."""
        n, t = ids.shape
        if first_row < 0 or first_row + n > self.model.kv_cache[0].shape[1] or t > self.max_len:
            raise ValueError(f"{n} prompts of {t} tokens from cache row {first_row} do not fit the cache")
        key = (n, padded_length(t, self.max_len), first_row)
        if not (graph and self.prefill_graphs) or key[0] * key[1] > PREFILL_GRAPH_TOKENS or (
                key not in self._prefill_graphs and len(self._prefill_graphs) >= PREFILL_GRAPHS):
            hidden = self.model(ids, torch.arange(t, device=ids.device).expand(n, t), first_row, from_start=True)
            return self.model.compute_logits(hidden.view(n, t, -1)[:, -1].contiguous())
        entry = self._prefill_graphs.get(key) or self._capture_prefill(*key)
        entry.ids[:, :t] = ids
        entry.ids[:, t:] = 0
        entry.last.fill_(t - 1)
        entry.graph.replay()
        return entry.logits.clone()

    def _capture_prefill(self, n: int, length: int, first_row: int) -> _PrefillGraph:
        ids = torch.zeros((n, length), dtype=torch.long, device=self.device)
        last = torch.full((1,), length - 1, dtype=torch.long, device=self.device)
        positions = torch.arange(length, device=self.device).expand(n, length)

        def forward() -> torch.Tensor:
            hidden = self.model(ids, positions, first_row, from_start=True).view(n, length, -1)
            return self.model.compute_logits(hidden.index_select(1, last).view(n, -1))

        forward()  # compiles the Triton kernels at these sizes and allocates split-K counters, outside capture
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, self._prefill_pool):
            logits = forward()
        self._prefill_pool = self._prefill_pool or graph.pool()
        self._prefill_graphs[(n, length, first_row)] = entry = _PrefillGraph(graph, ids, last, positions, logits)
        return entry

    @torch.inference_mode()
    def prefill(self, prompts: Sequence[Sequence[int]]) -> torch.Tensor:
        """Run the prompts into cache rows 0.. and return the logits of each one's last token [B, vocab].
        Prompts of one length go as one batch, others one at a time."""
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        if len(prompts) > self.max_batch:
            raise ValueError(f"{len(prompts)} prompts exceed max_batch {self.max_batch}")
        longest = max(len(p) for p in prompts)
        if longest >= self.max_len:
            raise ValueError(f"a prompt of {longest} tokens leaves no room in max_len {self.max_len}")
        if len({len(p) for p in prompts}) == 1:
            return self.prefill_rows(torch.tensor(prompts, dtype=torch.long, device=self.device))
        # One at a time and eagerly: a graph per (length, row) would be captured for one use.
        return torch.cat([self.prefill_rows(torch.tensor([prompt], dtype=torch.long, device=self.device), row,
                                            graph=False) for row, prompt in enumerate(prompts)])

    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_tokens: int,
        sampling: SamplingParams = SamplingParams(),
        *,
        seed: int | None = None,
        stop_ids: Sequence[int] = (),
        on_token: Callable[[int, int], None] | None = None,
    ) -> list[list[int]]:
        """Up to max_tokens new token ids per prompt; a sequence ends after a stop id (not included).
        on_token(sequence index, token id) is called for each token as it is produced."""
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        lengths = [len(p) for p in prompts]
        if max(lengths, default=0) + max_tokens > self.max_len:
            raise ValueError(f"prompt ({max(lengths)}) + max_tokens ({max_tokens}) exceed max_len {self.max_len}")
        gen = None
        if seed is not None:
            gen = torch.Generator(device=self.device).manual_seed(seed)
        stop = set(stop_ids)
        out: list[list[int]] = [[] for _ in prompts]
        done = [False] * len(prompts)
        positions = torch.tensor(lengths, dtype=torch.long, device=self.device)
        greedy = sampling.temperature == 0
        tokens = sample(self.prefill(prompts), sampling, gen)
        for step in range(max_tokens):
            for i, token in enumerate(tokens.tolist()):
                if done[i]:
                    continue
                if token in stop:
                    done[i] = True
                    continue
                out[i].append(token)
                if on_token is not None:
                    on_token(i, token)
            if all(done) or step == max_tokens - 1:
                break
            if greedy:
                tokens = self.decode_greedy(tokens, positions + step)
            else:
                tokens = sample(self.decode_step(tokens, positions + step), sampling, gen)
        return out
