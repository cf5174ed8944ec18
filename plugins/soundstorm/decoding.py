"""SoundStorm decoding: MaskGIT-style parallel decoding, level by level, in sliding windows.

Within a window every token after the prompt starts masked. Levels are filled coarse to fine; level q
takes ``iterations[q]`` forward passes. Each pass predicts all of the level's masked tokens at once,
samples them (temperature / top-k / top-p) and keeps the most confident ones; how many stay masked
follows the cosine schedule ``floor(M cos(pi/2 (i+1)/n))``, so the last pass fills the rest, greedily.
Audio longer than the window is made window by window, each prompted with the end of the last.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from soundstage.plugins.lm.sampling import SamplingConfig, sample

from .configs import DecodingConfig  # noqa: F401  (re-exported)
from .model import SoundStormModel


def masked_after(total: int, step: int, steps: int) -> int:
    """Tokens of a level still masked after pass ``step`` (0-based) of ``steps``: the cosine schedule."""
    return math.floor(total * math.cos(math.pi / 2 * (step + 1) / steps))


@torch.inference_mode()
def decode_window(
    model: SoundStormModel,
    semantic: Tensor,
    prompt: Tensor,
    iterations: list[int],
    sampling: SamplingConfig,
    choice_temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """All levels [B, Q, T] of one window: semantic ids [B, T] at the frame rate, prompt codes [B, Q, Tp]
    (kept as given, Tp < T). Takes at most ``sum(iterations)`` forward passes (fewer when a level has
    fewer masked tokens than passes)."""
    B, T = semantic.shape
    Q, Tp = model.num_quantizers, prompt.shape[-1]
    if len(iterations) != Q:
        raise ValueError(f"iterations lists {len(iterations)} levels, the model has {Q}")
    codes = torch.full((B, Q, T), model.mask_id, dtype=torch.long, device=semantic.device)
    codes[..., :Tp] = prompt
    total = T - Tp  # masked tokens per level and row (the same in every row)
    for q, steps in enumerate(iterations):
        for i in range(steps):
            still = codes[:, q] == model.mask_id  # [B, T]
            n_still = int(still[0].sum())  # rows unmask in step, so row 0 speaks for all
            if n_still == 0:
                break
            last = i == steps - 1
            logits = model.logits(model(codes, semantic), q).float()  # [B, T, K]
            flat = logits.flatten(0, 1)
            tokens = (flat.argmax(-1) if last else sample(flat, sampling.temperature, sampling.top_k, sampling.top_p, generator)).view(B, T)
            if last:  # the schedule's end: every remaining token, as predicted
                codes[:, q] = torch.where(still, tokens, codes[:, q])
                continue
            confidence = logits.log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1)  # [B, T]
            if choice_temperature > 0:
                u = torch.rand(confidence.shape, generator=generator, device=confidence.device).clamp_(1e-20, 1.0)
                confidence = confidence + choice_temperature * (1 - (i + 1) / steps) * -torch.log(-torch.log(u))
            keep_masked = min(max(masked_after(total, i, steps), 0), n_still - 1)  # unmask at least one per pass
            chosen = confidence.masked_fill(~still, float("-inf")).topk(n_still - keep_masked, dim=-1).indices  # [B, n]
            codes[:, q].scatter_(1, chosen, tokens.gather(1, chosen))
    return codes


@torch.inference_mode()
def decode(
    model: SoundStormModel,
    semantic: Tensor,
    prompt: Tensor,
    iterations: list[int],
    sampling: SamplingConfig,
    context_frames: int,
    choice_temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Codes [B, Q, T] for semantic ids [B, T] at the frame rate and prompt codes [B, Q, Tp].

    Windows are ``model.max_frames`` long; after the first, each starts ``context_frames`` before the
    end of what is made so far and takes those frames as its prompt. The prompt must be shorter than a
    window (the caller checks, to name its config key).
    """
    window = model.max_frames
    T = semantic.shape[-1]
    context = min(max(context_frames, 0), window - 1)
    codes = prompt[..., :T]
    was_training = model.training
    model.eval()
    try:
        while codes.shape[-1] < T:
            t = codes.shape[-1]
            a0 = 0 if t < window else t - context  # the first window keeps all of a (short) prompt
            a1 = min(T, a0 + window)
            out = decode_window(model, semantic[:, a0:a1], codes[..., a0:t], iterations, sampling, choice_temperature, generator)
            codes = torch.cat([codes, out[..., t - a0 :]], dim=-1)
    finally:
        model.train(was_training)
    return codes
