"""Named sizes of the SoundStorm stage, as overrides of ``SoundStormConfig``'s defaults (= ``paper``).

``tiny`` trains on a laptop CPU in minutes, ``small`` in a CPU hour, ``paper`` is the paper's model:
12 Conformer blocks, 16 heads, d 1024, FF 4096, kernel 5 (about 320M parameters at 12 x 1024 codes).
Recipes set the same keys under a stage's ``config:``; ``preset_config`` is for code and benchmarks.
"""
from __future__ import annotations

from typing import Any

from soundstage.config import build_config

from .configs import SoundStormConfig

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(model=dict(d_model=128, n_layer=2, n_head=4, conv_kernel=5), optim=dict(lr=3e-3, warmup_steps=20),
                 window_seconds=4.0, batch_size=8),
    "small": dict(model=dict(d_model=256, n_layer=4, n_head=4, conv_kernel=5, dropout=0.1),
                  optim=dict(lr=1e-3, warmup_steps=200), window_seconds=8.0, batch_size=8),
    "paper": {},  # = SoundStormConfig defaults
}


def preset_config(name: str, **overrides: Any) -> SoundStormConfig:
    """The ``SoundStormConfig`` of preset ``name`` (tiny | small | paper) with ``overrides`` on top."""
    if name not in PRESETS:
        raise KeyError(f"unknown soundstorm preset {name!r} (known: {', '.join(PRESETS)})")
    return build_config(SoundStormConfig, _merge(PRESETS[name], overrides), where=f"soundstorm[{name}]")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
