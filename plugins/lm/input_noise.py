"""Training-time noise on an LM's own history: some RVQ-code inputs replaced by random codes of their level.

At generation an acoustic LM reads the codes it sampled itself, errors included; trained only on
true codes, it learns to copy its history and drifts once that history is wrong. Replacing a share
of the code inputs (never the targets) with random codes of the same level teaches it to weigh the
semantic conditioning against the history it is fed.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def corrupt_history(inputs: Tensor, levels: Tensor, share: float, level_range: Callable[[int], tuple[int, int]],
                    generator: torch.Generator | None = None) -> Tensor:
    """``inputs`` [B, L] with ``levels`` [B, L] of the targets (input t is target t - 1, -1 for non-codes)
    -> a copy with about ``share`` of the code inputs replaced by uniformly drawn codes of the same level."""
    if share <= 0:
        return inputs
    input_levels = F.pad(levels[:, :-1], (1, 0), value=-1)
    pick = (input_levels >= 0) & (torch.rand(inputs.shape, device=inputs.device, generator=generator) < share)
    if not bool(pick.any()):
        return inputs
    q = input_levels[pick]
    ranges = torch.tensor([level_range(level) for level in range(int(q.max()) + 1)], device=inputs.device)
    lo, hi = ranges[q, 0], ranges[q, 1]
    draw = torch.rand(q.shape, device=inputs.device, generator=generator)
    out = inputs.clone()
    out[pick] = lo + (draw * (hi - lo)).long().clamp(max=hi - lo - 1)
    return out
