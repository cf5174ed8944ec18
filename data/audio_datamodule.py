"""AudioDataModule: random fixed-length crops of audio shards for training, deterministic validation."""
from __future__ import annotations

import json
import logging
import random
from typing import Any

import numpy as np
import torch

from .audio_io import decode_audio_bytes, resample
from .augment import AugmentConfig, Augmenter
from .shards import expand_shards
from .stream import ShardDataModule, ShardStream, rank_and_world, start_step

log = logging.getLogger("soundstage.data")
AUDIO_EXTENSIONS = ("flac", "wav", "ogg", "opus", "mp3")


def decode_audio_sample(sample: dict[str, Any], sample_rate: int) -> tuple[str, np.ndarray, dict[str, Any]]:
    """A raw webdataset sample -> (key, mono float32 [T] at ``sample_rate``, metadata)."""
    ext = next((e for e in AUDIO_EXTENSIONS if e in sample), None)
    if ext is None:
        raise ValueError(f"no audio member (expected one of {AUDIO_EXTENSIONS}), got {sorted(sample)}")
    wave, sr = decode_audio_bytes(sample[ext])
    if sr != sample_rate:
        wave = resample(wave, sr, sample_rate)
    if wave.size == 0 or not np.isfinite(wave).all():
        raise ValueError("empty or non-finite audio")
    meta = json.loads(sample["json"]) if "json" in sample else {}
    return sample["__key__"], wave, meta


def crop(wave: np.ndarray, length: int, rng: random.Random | None, hop: int = 1) -> np.ndarray:
    """A ``length``-sample crop of ``wave`` [T]: random start on a multiple of ``hop`` (``rng``) or the start."""
    if length <= 0 or len(wave) <= length:
        return wave
    if rng is None:
        return wave[:length]
    start = rng.randrange((len(wave) - length) // hop + 1) * hop
    return wave[start : start + length]


def collate_audio(items: list[tuple[str, np.ndarray]], pad_to: int = 0) -> dict[str, Any]:
    """[(key, wave [T_i])] -> {"audio": float32 [B, T], "lengths": int64 [B], "key": [str]} (zero padded)."""
    lengths = [len(w) for _, w in items]
    audio = torch.zeros(len(items), max(max(lengths), pad_to), dtype=torch.float32)
    for i, (_, w) in enumerate(items):
        audio[i, : len(w)] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
    return {"audio": audio, "lengths": torch.tensor(lengths, dtype=torch.int64), "key": [k for k, _ in items]}


class _AudioDecode:
    """Picklable decode+crop(+augment, training only) step run inside DataLoader workers."""

    def __init__(self, sample_rate: int, length: int, hop: int, augment: Augmenter | None = None) -> None:
        self.sample_rate, self.length, self.hop, self.augment = sample_rate, length, hop, augment

    def __call__(self, sample: dict[str, Any], rng: random.Random | None) -> tuple[str, np.ndarray]:
        key, wave, _ = decode_audio_sample(sample, self.sample_rate)
        wave = crop(wave, self.length, rng, self.hop)
        if self.augment is not None and rng is not None:
            wave = self.augment(wave, rng)
        return key, wave


class _AudioCollate:
    def __init__(self, pad_to: int) -> None:
        self.pad_to = pad_to

    def __call__(self, items: list[tuple[str, np.ndarray]]) -> dict[str, Any]:
        return collate_audio(items, self.pad_to)


class AudioDataModule(ShardDataModule):
    """Batches ``{"audio": float32 [B, T], "lengths": int64 [B], "key": list[str]}`` from audio shards.

    Training yields ``batches_per_epoch`` batches per rank (default: samples / (batch x world)) of
    random ``segment_samples`` crops starting on multiples of ``hop_length``. Validation crops the
    first ``val_segment_samples`` (default ``segment_samples``; ``<= 0``: whole utterances) and
    reads every shard once across ranks and workers. ``num_skipped`` counts corrupt samples.
    ``augment`` degrades a share of the training crops (``data/augment.py``); validation is never augmented.
    """

    def __init__(
        self,
        train_shards: str,
        val_shards: str | None,
        sample_rate: int,
        batch_size: int,
        segment_samples: int,
        num_workers: int = 0,
        batches_per_epoch: int | None = None,
        shuffle_buffer: int = 256,
        seed: int = 0,
        val_segment_samples: int | None = None,
        pin_memory: bool = False,
        prefetch_factor: int = 2,
        hop_length: int = 1,
        augment: AugmentConfig | None = None,
    ) -> None:
        super().__init__(train_shards, val_shards, batch_size, num_workers, batches_per_epoch, shuffle_buffer, seed,
                         pin_memory, prefetch_factor)
        self.sample_rate = sample_rate
        self.segment_samples = segment_samples
        self.val_segment_samples = segment_samples if val_segment_samples is None else val_segment_samples
        self.hop_length = max(hop_length, 1)
        self.augmenter = Augmenter(augment, sample_rate) if augment is not None and augment.prob > 0 else None

    def train_dataloader(self):
        rank, world = rank_and_world(self)
        urls = expand_shards(self.train_shards)
        stream = ShardStream(
            urls, _AudioDecode(self.sample_rate, self.segment_samples, self.hop_length, self.augmenter),
            _AudioCollate(self.segment_samples), self.batch_size, self.skipped, train=True,
            batches_per_epoch=self.train_batches_per_epoch(urls, world), shuffle_buffer=self.shuffle_buffer,
            seed=self.seed, rank=rank, world_size=world, start_step=start_step(self),
        )
        return self.loader(stream)

    def val_dataloader(self):
        if not self.val_shards:
            return []
        rank, world = rank_and_world(self)
        stream = ShardStream(
            expand_shards(self.val_shards), _AudioDecode(self.sample_rate, self.val_segment_samples, 1),
            _AudioCollate(0), self.batch_size, self.skipped, train=False, seed=self.seed, rank=rank, world_size=world,
        )
        return self.loader(stream)
