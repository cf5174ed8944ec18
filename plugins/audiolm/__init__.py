"""The AudioLM application over soundstage's stages: roles, ``Pipeline`` (generation from a run or an
exported bundle), the ``audiolm_samples`` stage, ``export``, ``eval`` and their CLI verbs.

    from soundstage.plugins.audiolm import Pipeline
    pipe = Pipeline.load("runs/speech_small")
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pipeline import Pipeline

__all__ = ["Pipeline"]


def __getattr__(name: str) -> Any:
    # lazy, so the CLI can import this package's verbs without torch
    if name == "Pipeline":
        from .pipeline import Pipeline

        return Pipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
