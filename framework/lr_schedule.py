"""One learning-rate schedule for every stage, over its training budget: ``max_steps`` or ``max_time``,
whichever runs out first. A stage stopped by its wall-clock budget still ends annealed."""
from __future__ import annotations

import math
from typing import Any, Callable

from soundstage.trainer import time_progress


def budget_progress(trainer: Any) -> float | None:
    """Share of the training budget used, in [0, 1]: the larger of ``global_step / max_steps`` and the
    share of ``max_time`` elapsed; None when the trainer has neither (or there is no trainer)."""
    if trainer is None:
        return None
    by_time = time_progress(trainer)
    by_steps = trainer.global_step / trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
    parts = [p for p in (by_time, by_steps) if p is not None]
    return min(1.0, max(parts)) if parts else None


def warmup_anneal(trainer: Any, warmup_steps: int, min_ratio: float, anneal_fraction: float = 1.0,
                  decay: float = 1.0) -> Callable[[int], float]:
    """An LR factor per scheduler step (a ``LambdaLR`` function): linear warm-up over ``warmup_steps``,
    then ``decay ** (steps after the warm-up)``, times a cosine from 1 to ``min_ratio`` over the budget's
    last ``anneal_fraction`` (1: cosine over the whole budget; 0: no anneal, as without a budget)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        scale = decay ** (step - warmup_steps)
        progress = budget_progress(trainer)
        if progress is None or anneal_fraction <= 0:
            return scale
        start = 1.0 - anneal_fraction
        into = min(1.0, max(0.0, (progress - start) / anneal_fraction))
        return scale * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * into)))

    return factor
