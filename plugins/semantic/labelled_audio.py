"""Whole held-out utterances with their phoneme timings, read straight from audio shards.

Phone metrics need every frame's phone, so validation reads complete utterances (not crops)
and the ``phonemes`` list ``[{"phoneme", "start", "end"}, ...]`` from each sample's JSON. Samples
without phoneme timings are still yielded (their ``phonemes`` is empty) so losses can be computed.
"""
from __future__ import annotations

import io
import json
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

AUDIO_EXTS = ("flac", "wav")


def _decode(sample: dict[str, Any], sample_rate: int) -> dict[str, Any] | None:
    import soundfile as sf

    ext = next((e for e in AUDIO_EXTS if e in sample), None)
    if ext is None:
        return None
    wave, sr = sf.read(io.BytesIO(sample[ext]), dtype="float32", always_2d=True)
    wave = wave.mean(axis=1)
    if sr != sample_rate:
        import soxr

        wave = soxr.resample(wave, sr, sample_rate).astype(np.float32)
    meta = json.loads(sample["json"]) if "json" in sample else {}
    return {"audio": wave, "phonemes": list(meta.get("phonemes") or []), "key": sample.get("__key__", "")}


class LabelledUtterances(IterableDataset):
    """Complete utterances (+ phonemes) from ``shards`` (any spec ``expand_shards`` accepts), optionally capped."""

    def __init__(self, shards: str, sample_rate: int, max_seconds: float | None = None, max_items: int | None = None) -> None:
        super().__init__()
        self.shards, self.sample_rate, self.max_seconds, self.max_items = shards, sample_rate, max_seconds, max_items

    def __iter__(self) -> Iterator[dict[str, Any]]:
        import webdataset as wds

        from soundstage.data.shards import expand_shards

        # Every rank reads the whole (small) held-out set, so each computes the same metrics without a gather.
        ds = wds.WebDataset(expand_shards(self.shards), shardshuffle=False, nodesplitter=None, empty_check=False)
        count = 0
        for sample in ds:
            try:
                item = _decode(sample, self.sample_rate)
            except Exception:  # corrupt samples are skipped, never fatal
                continue
            if item is None:
                continue
            if self.max_seconds is not None:
                item["audio"] = item["audio"][: int(self.max_seconds * self.sample_rate)]
            yield item
            count += 1
            if self.max_items is not None and count >= self.max_items:
                return


def collate_utterances(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Zero-pad to the longest: {"audio" [B, T], "lengths" [B], "phonemes" list, "key" list}."""
    lengths = torch.tensor([len(it["audio"]) for it in items], dtype=torch.long)
    audio = torch.zeros(len(items), int(lengths.max()) if len(items) else 0)
    for i, it in enumerate(items):
        audio[i, : len(it["audio"])] = torch.from_numpy(it["audio"])
    return {"audio": audio, "lengths": lengths, "phonemes": [it["phonemes"] for it in items], "key": [it["key"] for it in items]}


def labelled_loader(
    shards: str, sample_rate: int, batch_size: int = 4, max_seconds: float | None = None, max_items: int | None = None
) -> DataLoader:
    """A DataLoader of whole labelled utterances (single process: the held-out set is small)."""
    ds = LabelledUtterances(shards, sample_rate, max_seconds, max_items)
    return DataLoader(ds, batch_size=batch_size, collate_fn=collate_utterances, num_workers=0)
