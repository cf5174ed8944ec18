"""SoundStorm's training masks (Borsos et al. 2023, section 3.2) and the semantic-to-frame alignment.

Per utterance: a prompt boundary t ~ U{0..T-1} (frames before it are the prompt: never masked, no
loss); a level q ~ U{1..Q} (or drawn with ``level_weights``: a small budget can train the first
levels, which carry the content, more often than the paper's uniform draw); a mask ratio p = cos(u),
u ~ U[0, pi/2], applied to the non-prompt frames of level q; every finer level fully masked after the
prompt; coarser levels given. The loss covers the masked tokens of level q only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from soundstage.data.token_batch import TokenBatch


@dataclass
class MaskedBatch:
    """One training batch after masking; T is the number of frames of the longest utterance."""

    inputs: Tensor  # [B, Q, T] codes with ``mask_id`` where hidden
    semantic: Tensor  # [B, T] semantic ids at the codec frame rate
    targets: Tensor  # [B, T] the true codes of each row's level
    loss_mask: Tensor  # [B, T] bool: masked tokens of the row's level (what the loss covers)
    levels: Tensor  # [B] the level each row trains
    prompt_frames: Tensor  # [B] frames before the prompt boundary
    frames: Tensor | None  # [B, T] bool real frames; None when no row is padded


def semantic_to_frames(semantic: Tensor, num_frames: int, semantic_rate: float, acoustic_rate: float) -> Tensor:
    """Semantic ids [..., Ts] -> [..., num_frames]: each codec frame takes the id of the semantic frame it
    falls in (2 codec frames per id at 25 -> 50 Hz); frames past the last id repeat it."""
    t = torch.arange(num_frames, device=semantic.device)
    index = torch.floor(t * (semantic_rate / acoustic_rate) + 1e-6).long().clamp(max=semantic.shape[-1] - 1)
    return semantic[..., index]


def sample_masks(codes: Tensor, lengths: Tensor, mask_id: int, generator: torch.Generator | None = None,
                 level_weights: list[float] | None = None) -> dict[str, Tensor]:
    """The paper's masks for codes [B, Q, T] with ``lengths`` [B] real frames (each >= 1); the level of
    each row is uniform, or drawn in proportion to ``level_weights`` (one per level).

    Random numbers are drawn on the CPU (``generator`` for reproducible validation masks) and moved.
    Returns ``inputs``, ``loss_mask``, ``levels``, ``prompt_frames``, ``ratios`` (the drawn p).
    """
    B, Q, T = codes.shape
    device = codes.device
    lengths_cpu = lengths.cpu()
    prompt = (torch.rand(B, generator=generator) * lengths_cpu).long()  # U{0..len-1}
    if level_weights is None:
        levels = torch.randint(0, Q, (B,), generator=generator)  # U{1..Q}, 0-based
    else:
        levels = torch.multinomial(torch.tensor(level_weights, dtype=torch.float), B, replacement=True,
                                   generator=generator)
    ratios = torch.cos(torch.rand(B, generator=generator) * (math.pi / 2))  # p = cos(u), u ~ U[0, pi/2]
    n_free = lengths_cpu - prompt  # non-prompt frames, >= 1
    n_masked = torch.ceil(ratios * n_free).long().clamp(min=1)  # at least one token carries the loss
    t = torch.arange(T)
    free = (t[None] >= prompt[:, None]) & (t[None] < lengths_cpu[:, None])  # [B, T]
    # A uniformly random subset of n_masked free frames per row: the n_masked smallest random scores.
    scores = torch.rand(B, T, generator=generator).masked_fill(~free, 2.0)
    rank = torch.empty(B, T, dtype=torch.long).scatter_(1, scores.argsort(dim=1), t.expand(B, T).contiguous())
    chosen = rank < n_masked[:, None]  # [B, T], inside ``free`` because free scores are < 1
    level_ids = torch.arange(Q)[None, :, None]  # [1, Q, 1]
    hide = ((level_ids == levels[:, None, None]) & chosen[:, None]) | ((level_ids > levels[:, None, None]) & free[:, None])
    return {
        "inputs": codes.masked_fill(hide.to(device), mask_id),
        "loss_mask": chosen.to(device),
        "levels": levels.to(device),
        "prompt_frames": prompt.to(device),
        "ratios": ratios,
    }


def make_masked_batch(batch: TokenBatch, num_quantizers: int, mask_id: int, semantic_rate: float,
                      acoustic_rate: float, generator: torch.Generator | None = None,
                      level_weights: list[float] | None = None) -> MaskedBatch:
    """From a batch's ``acoustic`` [B, >=Q, Ta] and ``semantic`` [B, Ts] windows (padded, with their lengths)."""
    codes = batch.tokens["acoustic"][:, :num_quantizers]
    lengths = batch.lengths["acoustic"]
    B, _, T = codes.shape
    ids = batch.tokens["semantic"]
    semantic = semantic_to_frames(ids, T, semantic_rate, acoustic_rate)  # [B, T]
    # A row whose semantic ids end early (rounding at the crop) repeats its last id instead of padding 0.
    last = (batch.lengths["semantic"] - 1).clamp(min=0)
    sem_frames = torch.floor(torch.arange(T, device=codes.device) * (semantic_rate / acoustic_rate) + 1e-6).long()
    semantic = torch.where(sem_frames[None] <= last[:, None], semantic, ids.gather(1, last[:, None]))
    m = sample_masks(codes, lengths, mask_id, generator, level_weights)
    levels = m["levels"]
    targets = codes.gather(1, levels[:, None, None].expand(B, 1, T)).squeeze(1)  # [B, T]
    padded = bool((lengths < T).any())
    frames = torch.arange(T, device=codes.device)[None] < lengths[:, None] if padded else None
    return MaskedBatch(m["inputs"], semantic, targets, m["loss_mask"], levels, m["prompt_frames"], frames)
