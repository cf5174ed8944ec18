"""TokenDataModule: aligned windows of precomputed semantic / acoustic tokens for the LM stages."""
from __future__ import annotations

import random
from typing import Any, Mapping

import torch

from .shards import expand_shards
from .stream import ShardDataModule, ShardStream, rank_and_world, start_step
from .token_batch import TokenBatch
from .token_shards import crop_aligned, decode_token_sample


def collate_tokens(items: list[dict[str, Any]], streams: tuple[str, ...]) -> TokenBatch:
    """Decoded token items (numpy streams) -> a ``TokenBatch`` of ``streams``."""
    return TokenBatch.of([{s: torch.from_numpy(it[s]) for s in streams} for it in items], [it["key"] for it in items])


class _TokenDecode:
    def __init__(self, streams: tuple[str, ...], window: Mapping[str, int] | None) -> None:
        self.streams, self.window = streams, None if window is None else dict(window)

    def __call__(self, sample: dict[str, Any], rng: random.Random | None) -> dict[str, Any]:
        return crop_aligned(decode_token_sample(sample, self.streams), self.window, rng)


class _TokenCollate:
    def __init__(self, streams: tuple[str, ...]) -> None:
        self.streams = streams

    def __call__(self, items: list[dict[str, Any]]) -> TokenBatch:
        return collate_tokens(items, self.streams)


class TokenDataModule(ShardDataModule):
    """Batches of token windows (``TokenBatch``: each stream padded, its lengths, the sample keys).

    Training takes a random window of ``window`` tokens per stream (``token_shards.window_lengths``: the
    same span of time in every stream, on frame boundaries of all of them; an LM stage's
    ``window_tokens``); validation takes the first window (whole sequences if ``window`` is None).
    Same epoch / rank / worker behaviour as ``AudioDataModule``.
    """

    def __init__(
        self,
        train_shards: str,
        val_shards: str | None,
        batch_size: int,
        streams: tuple[str, ...] = ("semantic", "acoustic"),
        window: Mapping[str, int] | None = None,
        num_workers: int = 0,
        batches_per_epoch: int | None = None,
        shuffle_buffer: int = 256,
        seed: int = 0,
        pin_memory: bool = False,
        prefetch_factor: int = 2,
    ) -> None:
        super().__init__(train_shards, val_shards, batch_size, num_workers, batches_per_epoch, shuffle_buffer, seed,
                         pin_memory, prefetch_factor)
        self.streams = tuple(streams)
        if window is not None and set(window) != set(self.streams):
            raise ValueError(f"window {dict(window)} must give the tokens of each stream {self.streams}")
        self.window = window

    def _stream(self, spec: str, train: bool) -> ShardStream:
        rank, world = rank_and_world(self)
        urls = expand_shards(spec)
        n = self.train_batches_per_epoch(urls, world) if train else 1
        return ShardStream(
            urls, _TokenDecode(self.streams, self.window), _TokenCollate(self.streams), self.batch_size,
            self.skipped, train=train, batches_per_epoch=n, shuffle_buffer=self.shuffle_buffer, seed=self.seed,
            rank=rank, world_size=world, start_step=start_step(self) if train else 0,
        )

    def train_dataloader(self):
        return self.loader(self._stream(self.train_shards, True))

    def val_dataloader(self):
        if not self.val_shards:
            return []
        return self.loader(self._stream(self.val_shards, False))
