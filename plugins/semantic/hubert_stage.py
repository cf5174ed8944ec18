"""The ``hubert`` stage: masked prediction of the current k-means targets (one HuBERT iteration).

Targets come from the upstream ``kmeans_tokenizer`` (``ctx.load_upstream("semantic")``), computed
on the fly for every batch and never saved with this model. A following ``kmeans_tokenizer`` with
``features: hubert`` clusters a chosen layer of this model: the next iteration's tokens.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from soundstage.errors import SoundstageError
from soundstage.lr_schedule import warmup_anneal
from soundstage.optim import adamw
from soundstage.plugins.teacher_ids import TeacherIds
from soundstage.stage import Stage, StageContext

from .configs import HubertStageConfig
from .datamodule import SemanticDataModule
from .hubert_model import Hubert, span_mask
from .spec import HubertSpec


def masked_prediction_loss(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy and accuracy over masked frames: logits [B, F, K], targets [B, F], mask [B, F]."""
    picked, labels = logits[mask], targets[mask]  # [M, K], [M]
    loss = F.cross_entropy(picked.float(), labels)
    acc = (picked.argmax(-1) == labels).float().mean()
    return loss, acc


class HubertStage(HubertSpec, Stage):
    """A HuBERT trained on an upstream tokenizer's targets; ``features(wave, layer)`` for the next k-means."""

    def __init__(self, config: HubertStageConfig) -> None:
        super().__init__(config)
        self.model = Hubert(config.model) if config.model.num_targets > 0 else None
        self._teacher: list[TeacherIds] = []  # the target tokenizer, outside the module tree so it is never saved

    def prepare(self, ctx: StageContext) -> None:
        """Load the target tokenizer and size the prediction head to its vocabulary."""
        teacher = ctx.load_upstream("semantic")
        vocab = int(teacher.vocab_size)
        cfg = self.config.model
        if cfg.num_targets not in (0, vocab):
            raise SoundstageError(f"hubert: model.num_targets={cfg.num_targets} but the target tokenizer has {vocab} ids")
        if self.model is None:
            cfg.num_targets = vocab
            self.model = Hubert(cfg)
        self.set_teacher(teacher)

    def set_teacher(self, teacher: Any) -> None:
        """Use ``teacher.encode(wave) -> ids`` as the target source (its frame rate must divide the model's)."""
        self._teacher = [TeacherIds(teacher, self.model.frame_rate, self.config.model.sample_rate, "hubert")]

    @property
    def sample_rate(self) -> int:
        return self.config.model.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.model.frame_rate

    def features(self, wave: torch.Tensor, layer: int, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Output of transformer block ``layer`` for wave [B, T]: [B, T // hop, dim]."""
        return self.model.features(wave, layer, lengths)

    @torch.no_grad()
    def targets(self, wave: torch.Tensor, lengths: torch.Tensor | None, frames: int) -> torch.Tensor:
        """Teacher ids at the model's frame rate: [B, frames] (repeated when the teacher is slower)."""
        if not self._teacher:
            raise SoundstageError("hubert: no target tokenizer (call prepare(ctx) or set_teacher)")
        return self._teacher[0](wave, lengths, frames)

    def _step(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        wave, lengths = batch["audio"], batch.get("lengths")
        if lengths is None:
            lengths = torch.full((wave.shape[0],), wave.shape[-1], device=wave.device, dtype=torch.long)
        frames = wave.shape[-1] // self.model.hop_length
        targets = self.targets(wave, lengths, frames)  # [B, F]
        frame_lengths = self.model.frame_lengths(lengths)
        mask = span_mask(frame_lengths, frames, self.config.mask_start_prob, self.config.mask_span, generator)
        mask &= targets >= 0
        logits = self.model(wave, lengths, mask)  # [B, F, K]
        return masked_prediction_loss(logits, targets, mask)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, acc = self._step(batch)
        bs = batch["audio"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/masked_acc", acc, batch_size=bs)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        # A fixed mask per batch index keeps validation losses comparable across epochs.
        gen = torch.Generator(device=batch["audio"].device).manual_seed(batch_idx)
        loss, acc = self._step(batch, gen)
        bs = batch["audio"].shape[0]
        self.log("val/loss", loss, prog_bar=True, batch_size=bs, sync_dist=True)
        self.log("val/masked_acc", acc, batch_size=bs, sync_dist=True)

    def configure_optimizers(self) -> Any:
        c = self.config
        decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in self.model.named_parameters() if p.dim() < 2]
        opt = adamw(
            [{"params": decay, "weight_decay": c.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=c.lr, betas=tuple(c.betas),
        )
        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_anneal(self.trainer, c.warmup_steps, 0.0))  # cosine to zero over the budget
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def build_datamodule(self, ctx: StageContext) -> SemanticDataModule:
        c = self.config
        return SemanticDataModule.from_config(ctx, c, c.model.sample_rate)

