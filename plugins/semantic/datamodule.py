"""Data for the semantic stages: random training crops from ``AudioDataModule``, whole labelled val utterances."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import lightning as L


from .configs import SemanticDataConfig, audio_batch_floor  # noqa: F401  (re-exported)
from .labelled_audio import labelled_loader

if TYPE_CHECKING:
    from soundstage.stage import StageContext


class SemanticDataModule(L.LightningDataModule):
    """Training batches {"audio" [B, T], "lengths" [B]}; validation batches add per-utterance "phonemes"."""

    def __init__(
        self,
        ctx: "StageContext",
        batch_size: int,
        segment_seconds: float,
        batches_per_epoch: int | None,
        val_batch_size: int,
        val_max_seconds: float | None,
        val_max_items: int | None,
        sample_rate: int,
    ) -> None:
        super().__init__()
        from soundstage.data.audio_datamodule import AudioDataModule

        if not ctx.train_shards:
            raise ValueError(f"stage {ctx.name!r}: no training shards")
        d = ctx.data
        self.audio = AudioDataModule(
            train_shards=ctx.train_shards, val_shards=None, sample_rate=sample_rate, batch_size=batch_size,
            segment_samples=int(segment_seconds * sample_rate), num_workers=d.num_workers,
            batches_per_epoch=batches_per_epoch, shuffle_buffer=d.shuffle_buffer, seed=ctx.seed,
            pin_memory=d.pin_memory, prefetch_factor=d.prefetch_factor,
        )
        self.val_shards, self.sample_rate = ctx.val_shards, sample_rate
        self.val_batch_size, self.val_max_seconds, self.val_max_items = val_batch_size, val_max_seconds, val_max_items

    @classmethod
    def from_config(cls, ctx: "StageContext", c: SemanticDataConfig, sample_rate: int) -> "SemanticDataModule":
        return cls(ctx, c.batch_size, c.segment_seconds, c.batches_per_epoch, c.val_batch_size, c.val_max_seconds,
                   c.val_max_items, sample_rate)
    def setup(self, stage: str) -> None:
        self.audio.setup(stage)

    def train_dataloader(self) -> Any:
        return self.audio.train_dataloader()

    def val_dataloader(self) -> Any:
        if not self.val_shards:
            return []
        return labelled_loader(self.val_shards, self.sample_rate, self.val_batch_size, self.val_max_seconds, self.val_max_items)
