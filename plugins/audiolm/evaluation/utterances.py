"""Whole utterances with their metadata (voice, phonemes) read from audio shards, in shard order."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Utterance:
    """One audio sample: key, mono float32 wave [T] at the run's sample rate, and its JSON metadata."""

    key: str
    wave: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def voice(self) -> str | None:
        return self.meta.get("voice")

    @property
    def phonemes(self) -> list[dict]:
        return list(self.meta.get("phonemes") or [])


def read_utterances(shards: str, sample_rate: int, max_items: int | None = None) -> list[Utterance]:
    """Up to ``max_items`` utterances of ``shards`` (corrupt samples are skipped, as in training)."""
    import webdataset as wds

    from soundstage.data.audio_datamodule import decode_audio_sample
    from soundstage.data.shards import expand_shards

    ds = wds.WebDataset(expand_shards(shards), shardshuffle=False, nodesplitter=None, empty_check=False)
    out: list[Utterance] = []
    for sample in ds:
        try:
            key, wave, meta = decode_audio_sample(sample, sample_rate)
        except Exception:  # any undecodable sample is skipped, never fatal
            continue
        out.append(Utterance(key, wave, meta))
        if max_items is not None and len(out) >= max_items:
            break
    return out


def by_voice(utterances: list[Utterance]) -> dict[str, list[Utterance]]:
    """Utterances grouped by their ``voice`` (those without one are left out)."""
    groups: dict[str, list[Utterance]] = defaultdict(list)
    for u in utterances:
        if u.voice:
            groups[u.voice].append(u)
    return dict(groups)
