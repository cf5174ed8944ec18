"""Cross-entropy over each target's own RVQ level: logits for the ids that level can hold, nothing else.

A coarse or fine LM's vocabulary holds every level's codes (level q code c -> offset_q + c), yet at each
position only one level can come next, and generation samples inside that level's id range. Scoring a
target against the whole vocabulary computes logits that are never used and spends probability on ids
the sampler can never draw. Here the output projection runs only on the predicted positions and only
against their level's rows of the (tied) output matrix: the loss the sampler sees, at a fraction of the
output layer's FLOPs (the fine LM at 8 levels: 1/8 of the logits).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def per_level_cross_entropy(
    hidden: Tensor, weight: Tensor, targets: Tensor, mask: Tensor, levels: Tensor,
    level_range: Callable[[int], tuple[int, int]],
) -> tuple[Tensor, Tensor, Tensor]:
    """Cross-entropy, correctness and level of every predicted target, each scored within its level.

    hidden [B, L, D] (final-norm states), weight [V, D] (output projection), targets / mask / levels [B, L];
    ``level_range(q)`` gives level q's ids [lo, hi) (q = -1: positions without an RVQ level).
    Returns flat [N] tensors over the N masked positions, grouped by level.
    """
    h, t, lev = hidden[mask], targets[mask], levels[mask]
    ces, correct, groups = [], [], []
    for q in torch.unique(lev).tolist():
        rows = (lev == q).nonzero().squeeze(1)
        lo, hi = level_range(q)
        logits = (h[rows] @ weight[lo:hi].T).float()
        local = t[rows] - lo
        ces.append(F.cross_entropy(logits, local, reduction="none"))
        correct.append((logits.detach().argmax(-1) == local).float())
        groups.append(lev[rows])
    if not ces:
        empty = hidden.new_zeros(0)
        return empty, empty, lev
    return torch.cat(ces), torch.cat(correct), torch.cat(groups)
