"""How far the table's figures could move with other held-out clips: a bootstrap over clips.

Every figure of the table is an aggregate over the same clips (PER: total edits over total reference
phones; speaker figures: a mean). Resampling the clips with replacement, the same resample for every
row, gives each figure's 95% interval and, because the rows stay paired, the interval of a comparison
between rows (resynthesis against twice the codec's PER) that the diagnosis uses to say whether the
clips resolve a verdict. Each clip's outcome includes its own sampling draw, so the interval covers
both another choice of clips and another seed. (torchmetrics' ``BootStrapper`` resamples tensors fed
to one metric at a time; these figures are ratios of per-clip counts shared across rows, so they are
resampled here directly.)
"""
from __future__ import annotations

from typing import Any

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95

# per-clip arrays stored in eval.json's protocol.per_clip, and the figure each aggregates into
RATIOS = {"per": ("edits", "phones"), "per_after_prompt": ("edits_after_prompt", "phones_after_prompt")}
MEANS = ("speaker_similarity", "consistency")


def resample_indices(num_clips: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """[resamples, num_clips] clip indices drawn with replacement (seeded: the same report every time)."""
    return np.random.default_rng(seed).integers(0, num_clips, size=(resamples, num_clips))


def resampled_figures(per_clip: dict[str, dict[str, list[float]]], idx: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Every row's figures recomputed on each resample: ``{row: {figure: [resamples]}}``.

    ``per_clip[row]`` holds per-clip arrays (``edits`` / ``phones`` ... or ``speaker_similarity`` ...);
    a figure with fewer values than clips (consistency skips short outputs) is resampled on its own clips.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    n = idx.shape[1]
    for row, arrays in per_clip.items():
        figs: dict[str, np.ndarray] = {}
        for figure, (num, den) in RATIOS.items():
            if num in arrays and den in arrays:
                a, b = np.asarray(arrays[num], float), np.asarray(arrays[den], float)
                total = b[idx].sum(1)
                figs[figure] = np.divide(a[idx].sum(1), total, out=np.full(len(idx), np.nan), where=total > 0)
        for figure in MEANS:
            values = np.asarray(arrays.get(figure, []), float)
            if len(values) == n:
                figs[figure] = values[idx].mean(1)
            elif len(values):
                figs[figure] = values[resample_indices(len(values), len(idx), seed=1)].mean(1)
        out[row] = figs
    return out


def interval(samples: np.ndarray, level: float = LEVEL) -> list[float] | None:
    """The central ``level`` interval of resampled values (None when there are none)."""
    samples = samples[np.isfinite(samples)]
    if not len(samples):
        return None
    tail = (1 - level) / 2 * 100
    return [round(float(v), 4) for v in np.percentile(samples, [tail, 100 - tail])]


def paired_resamples(protocol: dict[str, Any], seed: int = 0) -> dict[str, dict[str, np.ndarray]] | None:
    """The table's rows (and its reference pseudo-rows) on shared resamples of its clips; None without per-clip data."""
    per_clip = protocol.get("per_clip") or {}
    clips = int(protocol.get("clips") or 0)
    if clips < 2 or not per_clip:
        return None
    return resampled_figures(per_clip, resample_indices(clips, seed=seed))


def figure_intervals(protocol: dict[str, Any], seed: int = 0) -> dict[str, dict[str, list[float]]]:
    """``{row: {figure: [low, high]}}``: the 95% interval of every figure of the table."""
    sampled = paired_resamples(protocol, seed) or {}
    return {row: {fig: ci for fig, v in figs.items() if (ci := interval(v)) is not None} for row, figs in sampled.items()}
