"""The per-utterance feature normalisation ``kmeans_tokenizer`` selects (its config: ``configs.py``)."""
from __future__ import annotations

import torch

from .configs import FEATURE_KINDS, UTTERANCE_NORMS, KMeansTokenizerConfig  # noqa: F401  (re-exported)



def utterance_normalize(x: torch.Tensor, frame_lengths: torch.Tensor | None, kind: str) -> torch.Tensor:
    """Per-utterance mean (and variance) normalisation of x [B, F, D] over each utterance's valid frames.

    Cepstral mean (variance) normalisation: removes what is constant over an utterance (speaker
    and channel), so k-means spends its clusters on what changes within one: the phones.
    """
    if kind == "none" or x.shape[1] == 0:
        return x
    frames = x.shape[1]
    n = torch.full((x.shape[0],), frames, device=x.device) if frame_lengths is None else frame_lengths.to(x.device).clamp(1, frames)
    valid = (torch.arange(frames, device=x.device)[None] < n[:, None]).to(x.dtype)[..., None]  # [B, F, 1]
    count = n.to(x.dtype)[:, None, None]  # [B, 1, 1]
    mean = (x * valid).sum(1, keepdim=True) / count  # [B, 1, D]
    x = x - mean
    if kind == "meanvar":
        std = ((x * valid).pow(2).sum(1, keepdim=True) / count).clamp_min(1e-8).sqrt()
        x = x / std
    return x
