"""A guard against batches that cannot fit: each stage's memory floor against this machine's memory."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

from .errors import SoundstageError

if TYPE_CHECKING:
    from .recipe import Recipe

FLOAT_BYTES = 4


def machine_memory() -> int:
    """Physical memory of this machine in bytes (0 when the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_memory(recipe: "Recipe", stages: Sequence[str], limit: int | None = None) -> None:
    """Refuse a stage whose batch needs more than ``limit`` bytes (default: this machine's memory)."""
    limit = machine_memory() if limit is None else limit
    if limit <= 0:
        return
    for name in stages:
        plan = recipe.stages[name]
        for key, need, what in plan.spec.memory_floor(plan.config):
            if need > limit:
                raise SoundstageError(
                    f"stages.{name}.config.{key}: one batch ({what}) needs at least {human_bytes(need)}, more than "
                    f"this machine's {human_bytes(limit)} of memory; lower it"
                )


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"
