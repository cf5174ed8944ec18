"""soundstage: train AudioLM-style audio generators from YAML recipes of Lightning stage plugins."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Stage", "StageConfig", "register_stage", "load_recipe", "__version__"]

if TYPE_CHECKING:
    from .recipe import load_recipe
    from .registry import register_stage
    from .stage import Stage, StageConfig

_LAZY = {
    "Stage": "soundstage.stage",
    "StageConfig": "soundstage.stage",
    "register_stage": "soundstage.registry",
    "load_recipe": "soundstage.recipe",
}


def __getattr__(name: str) -> Any:
    # Lazy, so `import soundstage` (and the CLI's start-up) does not import torch or Lightning.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'soundstage' has no attribute {name!r}")
