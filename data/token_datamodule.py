"""TokenDataModule: aligned windows of precomputed semantic / acoustic tokens for the LM stages."""
from __future__ import annotations

import random
from typing import Any

import lightning as L
import torch

from .shards import count_samples, expand_shards
from .stream import ShardStream, SkipCounter, make_loader, rank_and_world, start_step
from .token_shards import crop_aligned, decode_token_sample

DEFAULT_BATCHES_PER_EPOCH = 1000


def collate_tokens(items: list[dict[str, Any]], streams: tuple[str, ...]) -> dict[str, Any]:
    """Pad each stream with 0: semantic -> int64 [B, Ts], acoustic -> int64 [B, Q, Ta]; plus ``<s>_lengths``."""
    batch: dict[str, Any] = {"key": [it["key"] for it in items]}
    for s in streams:
        arrays = [torch.from_numpy(it[s]) for it in items]
        lengths = [a.shape[-1] for a in arrays]
        out = torch.zeros(len(arrays), *arrays[0].shape[:-1], max(lengths), dtype=torch.int64)
        for i, a in enumerate(arrays):
            if a.shape[:-1] != arrays[0].shape[:-1]:
                raise ValueError(f"{s} tokens of {items[i]['key']!r} have shape {tuple(a.shape)}, "
                                 f"others {tuple(arrays[0].shape)}")
            out[i, ..., : a.shape[-1]] = a
        batch[s] = out
        batch[f"{s}_lengths"] = torch.tensor(lengths, dtype=torch.int64)
    return batch


class _TokenDecode:
    def __init__(self, streams: tuple[str, ...], window_seconds: float | None) -> None:
        self.streams, self.window_seconds = streams, window_seconds

    def __call__(self, sample: dict[str, Any], rng: random.Random | None) -> dict[str, Any]:
        return crop_aligned(decode_token_sample(sample, self.streams), self.streams, self.window_seconds, rng)


class _TokenCollate:
    def __init__(self, streams: tuple[str, ...]) -> None:
        self.streams = streams

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return collate_tokens(items, self.streams)


class TokenDataModule(L.LightningDataModule):
    """Batches of token windows: ``batch[s]`` and ``batch[f"{s}_lengths"]`` per stream, plus ``"key"``.

    Training takes a random ``window_seconds`` window (the same span of time in every stream, on
    frame boundaries of all of them); validation takes the first window (whole sequences if
    ``window_seconds`` is None). Same epoch / rank / worker behaviour as ``AudioDataModule``.
    """

    def __init__(
        self,
        train_shards: str,
        val_shards: str | None,
        batch_size: int,
        streams: tuple[str, ...] = ("semantic", "acoustic"),
        window_seconds: float | None = None,
        num_workers: int = 0,
        batches_per_epoch: int | None = None,
        shuffle_buffer: int = 256,
        seed: int = 0,
        pin_memory: bool = False,
        prefetch_factor: int = 2,
    ) -> None:
        super().__init__()
        self.train_shards, self.val_shards = train_shards, val_shards
        self.batch_size, self.streams = batch_size, tuple(streams)
        self.window_seconds = window_seconds
        self.num_workers, self.pin_memory, self.prefetch_factor = num_workers, pin_memory, prefetch_factor
        self.batches_per_epoch, self.shuffle_buffer, self.seed = batches_per_epoch, shuffle_buffer, seed
        self.rank: int | None = None  # set both to simulate a rank without a Trainer
        self.world_size: int | None = None
        self.skipped = SkipCounter()

    @property
    def num_skipped(self) -> int:
        """Corrupt samples skipped so far (all workers, this process)."""
        return self.skipped.count

    def _stream(self, spec: str, train: bool) -> ShardStream:
        rank, world = rank_and_world(self)
        urls = expand_shards(spec)
        n = self.batches_per_epoch
        if train and n is None:
            total = count_samples(urls)
            n = DEFAULT_BATCHES_PER_EPOCH if total is None else max(1, total // (self.batch_size * world))
        return ShardStream(
            urls, _TokenDecode(self.streams, self.window_seconds), _TokenCollate(self.streams), self.batch_size,
            self.skipped, train=train, batches_per_epoch=n or 1, shuffle_buffer=self.shuffle_buffer, seed=self.seed,
            rank=rank, world_size=world, start_step=start_step(self) if train else 0,
        )

    def train_dataloader(self):
        return make_loader(self._stream(self.train_shards, True), self.num_workers, self.pin_memory, self.prefetch_factor)

    def val_dataloader(self):
        if not self.val_shards:
            return []
        return make_loader(self._stream(self.val_shards, False), self.num_workers, self.pin_memory, self.prefetch_factor)
