"""The one whole-utterance reader: every sample of audio shards with its metadata (voice, phonemes), in
shard order, corrupt samples skipped and counted. Training reads crops through the datamodules instead."""
from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from .stream import SkipCounter


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


def iter_utterances(shards: str, sample_rate: int, skipped: SkipCounter | None = None) -> Iterator[Utterance]:
    """Each utterance of ``shards`` in order (mono, resampled to ``sample_rate``). An undecodable sample is
    skipped and counted in ``skipped``; an unreadable shard (a wrong URL, a missing file) raises."""
    import webdataset as wds

    from .audio_datamodule import decode_audio_sample
    from .shards import expand_shards

    ds = wds.WebDataset(expand_shards(shards), shardshuffle=False, nodesplitter=None, empty_check=False)
    for sample in ds:
        try:
            key, wave, meta = decode_audio_sample(sample, sample_rate)
        except Exception as exc:  # a corrupt sample is skipped, never fatal (as in training)
            if skipped is not None:
                skipped(exc)
            continue
        yield Utterance(key, wave, meta)


def read_utterances(shards: str, sample_rate: int, max_items: int | None = None) -> list[Utterance]:
    """The first ``max_items`` (default: all) utterances of ``shards``."""
    return list(itertools.islice(iter_utterances(shards, sample_rate), max_items))


def by_voice(utterances: list[Utterance]) -> dict[str, list[Utterance]]:
    """Utterances grouped by their ``voice`` (those without one are left out)."""
    groups: dict[str, list[Utterance]] = defaultdict(list)
    for u in utterances:
        if u.voice:
            groups[u.voice].append(u)
    return dict(groups)
