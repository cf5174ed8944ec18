"""Batched next-token sampling (temperature, top-k, top-p) and the KV-cached decoding loop."""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, Sequence

import torch
from torch import Tensor

from .configs import SamplingConfig  # noqa: F401  (re-exported)
from .static_decoding import span_for, static_decoding
from .transformer import Transformer


def sample(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw one token per row from logits [B, V] -> ids [B]."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # [B, 1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the tokens ranked above it already reach top_p (the best one always stays).
        drop = probs.cumsum(dim=-1) - probs >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


_SHOW_PROGRESS: ContextVar[bool] = ContextVar("soundstage_decoding_progress", default=False)


@contextmanager
def decoding_progress(enabled: bool = True) -> Iterator[None]:
    """Show a progress bar (stderr) for every ``decode`` pass inside the block (long generations)."""
    token = _SHOW_PROGRESS.set(enabled)
    try:
        yield
    finally:
        _SHOW_PROGRESS.reset(token)


@torch.inference_mode()
def decode(
    model: Transformer,
    prompt: Tensor,
    ranges: Sequence[tuple[int, int]],
    sampling: SamplingConfig | Sequence[SamplingConfig],
    generator: torch.Generator | None = None,
    conditions: Tensor | None = None,
    unconditioned: Tensor | None = None,
) -> Tensor:
    """Extend prompt [B, Tp] (Tp >= 1) by len(ranges) tokens -> new ids [B, len(ranges)].

    ``conditions`` [B, Tp + len(ranges)(, K)]: the per-position condition ids of a model built with
    ``num_conditions`` (for the prompt, then for each position a sampled token is fed back at);
    ``unconditioned``: the same positions' "none" ids, used when ``sampling.guidance`` != 1 (both
    run as one batch of 2B rows sharing each sampled token).

    Step i samples only from token ids ``ranges[i] = (lo, hi)``, which is how layouts keep each
    position inside its stream's (or RVQ level's) vocabulary; a sequence of ``sampling`` configs is
    used in turn (step i: ``sampling[i % len(sampling)]``, e.g. one per RVQ level of a layout that
    interleaves them; ``compile`` is the first one's). One prefill, then one cached
    forward of a single token per step. On a CPU shared with other processes, batch-1 decoding
    is often fastest with ``torch.set_num_threads(1)`` (no waiting at every op's thread barrier).
    """
    B, Tp = prompt.shape
    n = len(ranges)
    out = torch.empty(B, n, dtype=torch.long, device=prompt.device)
    if n == 0:
        return out
    samplings = [sampling] if isinstance(sampling, SamplingConfig) else list(sampling)
    guided = conditions is not None and any(s.guidance != 1.0 for s in samplings)
    if guided:
        if unconditioned is None:
            raise ValueError("sampling.guidance != 1 needs the unconditioned condition ids")
        conditions = torch.cat([conditions, unconditioned])
        prompt = prompt.repeat(2, 1)
    was_training = model.training
    model.eval()  # no dropout while generating
    try:
        if samplings[0].compile:
            cache, one_token = static_decoding(model, len(prompt), Tp + n - 1)
        else:
            cache = model.make_cache(len(prompt), Tp + n - 1)  # the last sampled token is never fed back
            one_token = None
        cond = (lambda a, b: None) if conditions is None else (lambda a, b: conditions[:, a:b])

        def step(ids: Tensor, pos: int, a: int, b: int) -> Tensor:
            if one_token is not None and pos > 0:  # the prefill (any length, the caller's tensor) runs eagerly
                position = torch.tensor(pos, device=ids.device)
                logits = one_token(model, ids, position, cache, cond(a, b), span_for(pos, cache.max_len))  # [B(x2), V]
            else:
                logits = model(ids, cache=cache, pos=pos, last_only=True, conditions=cond(a, b))[:, -1]
            return logits

        logits = step(prompt, 0, 0, Tp)
        steps = enumerate(ranges)
        if _SHOW_PROGRESS.get():
            from tqdm import tqdm

            steps = tqdm(steps, total=n, unit="tok", desc="decoding", leave=False)
        for i, (lo, hi) in steps:
            s = samplings[i % len(samplings)]
            scores = logits[:, lo:hi]
            if guided:
                c, u = scores.float().chunk(2)
                scores = c if s.guidance == 1.0 else u + s.guidance * (c - u)
            out[:, i] = sample(scores, s.temperature, s.top_k, s.top_p, generator) + lo
            if i + 1 < n:
                fed = out[:, i : i + 1].repeat(2, 1) if guided else out[:, i : i + 1]
                logits = step(fed, Tp + i, Tp + i, Tp + i + 1)
    finally:
        model.train(was_training)
    return out
