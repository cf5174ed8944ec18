"""``soundstage eval-compare A B``: two evaluations of the same held-out clips, figure by figure, with the
95% interval of each difference from a paired bootstrap (both runs' clips resampled together), so an
ablation reads "resynthesis PER -0.021 [-0.039, -0.005]" instead of two numbers and a guess."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from soundstage.errors import SoundstageError

from .uncertainty import RATIOS, interval, resample_indices, resampled_figures

# (row, figure) pairs shown, in the table's order
FIGURES = (("original", "per"), ("codec", "per"), ("codec", "speaker_similarity"), ("resynthesis", "per"),
           ("resynthesis", "per_after_prompt"), ("resynthesis", "speaker_similarity"),
           ("resynthesis_prompted", "per_after_prompt"), ("resynthesis_prompted", "speaker_similarity"),
           ("continuation", "speaker_similarity"), ("continuation", "consistency"))


def load_protocol(path: str | Path) -> dict[str, Any]:
    """The protocol section of an ``eval.json`` (a path to the file, or to the folder that holds it)."""
    path = Path(path).expanduser()
    file = path / "eval.json" if path.is_dir() else path
    if not file.is_file():
        raise SoundstageError(f"no eval.json at {path}: run `soundstage eval` first")
    protocol = json.loads(file.read_text()).get("protocol") or {}
    if not protocol.get("per_clip"):
        raise SoundstageError(f"{file} has no per-clip figures (written before session 18's eval): evaluate the run again")
    return protocol


def compare(a: dict[str, Any], b: dict[str, Any], seed: int = 0) -> list[dict[str, Any]]:
    """Per figure: A, B, B - A and its 95% interval over paired resamples of the clips; ``resolved`` when it excludes 0."""
    keys_a, keys_b = a.get("clip_keys"), b.get("clip_keys")
    if a.get("clips") != b.get("clips") or (keys_a and keys_b and keys_a != keys_b):
        raise SoundstageError(f"the two evaluations scored different clips ({a.get('clips')} vs {b.get('clips')}, or other "
                              "utterances): compare evaluations of the same corpus with the same --num-clips and lengths")
    n = int(a["clips"])
    idx = resample_indices(n, seed=seed)
    sa, sb = resampled_figures(a["per_clip"], idx), resampled_figures(b["per_clip"], idx)
    out = []
    for row, figure in FIGURES:
        va, vb = a.get("rows", {}).get(row, {}).get(figure), b.get("rows", {}).get(row, {}).get(figure)
        if va is None or vb is None:
            continue
        span = interval(sb[row][figure] - sa[row][figure]) if _per_clip(a, row, figure, n) and _per_clip(b, row, figure, n) else None
        out.append({"row": row, "figure": figure, "a": va, "b": vb, "difference": vb - va, "interval": span,
                    "resolved": None if span is None else bool(span[0] > 0 or span[1] < 0)})
    return out


def _per_clip(protocol: dict[str, Any], row: str, figure: str, clips: int) -> bool:
    """Whether every clip has its own value of the figure (consistency skips short outputs), so it can be paired."""
    arrays = protocol["per_clip"].get(row, {})
    return all(len(arrays.get(k, [])) == clips for k in RATIOS.get(figure, (figure,)))
