"""What the three LM stages share: config fields, the training/validation steps, the optimizer,
the token data and the check of vocabulary sizes against the tokens stage."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from soundstage.errors import SoundstageError
from soundstage.stage import Stage, StageContext
from soundstage.token_contract import TokenStream, streams_problems
from soundstage.lr_schedule import warmup_anneal
from soundstage.optim import adamw

from soundstage.data.token_batch import TokenBatch

from .configs import LMConfig, OptimConfig  # noqa: F401  (re-exported)
from .layouts import LMBatch
from .level_loss import per_level_cross_entropy
from .metrics import TokenMetrics
from .input_noise import corrupt_history
from .sampling import SamplingConfig
from .spec import LMSpec
from .transformer import Transformer


class LMStage(LMSpec, Stage):
    """Base of the stages that train on token shards: a network (``build_model``) over the tokens a layout
    produces, with their shared optimizer, data, token checks, validation metrics and audio previews."""

    config: LMConfig

    def __init__(self, config: LMConfig, layout: Any, metric_levels: list[int]) -> None:
        super().__init__(config)
        self.layout = layout
        self.model = self.build_model()
        self.val_metrics = TokenMetrics(metric_levels)
        if config.model.compile:
            self.model.compile()  # in place: parameter names (and checkpoints) stay the same

    # --- subclass hooks -----------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        """The network: here a decoder-only ``Transformer`` over the layout's vocabulary, one window long."""
        config = self.config
        if self.max_seq_len() > config.model.block_size:
            raise SoundstageError(
                f"{self.stage_name or type(self).__name__}: a {config.window_seconds} s window is "
                f"{self.max_seq_len()} tokens, more than model.block_size={config.model.block_size}; "
                f"raise model.block_size or lower window_seconds"
            )
        return Transformer(config.model, self.layout.vocab_size, self.layout.num_conditions)

    def max_seq_len(self) -> int:
        """Length of the longest training sequence (one window)."""
        raise NotImplementedError

    # --- pipeline -----------------------------------------------------------------------------
    def prepare(self, ctx: StageContext) -> None:
        """Check this stage's expected token streams against those the tokens stage recorded."""
        record = ctx.upstream_for("tokens")
        recorded = record.outputs.get("streams")
        if recorded is None:
            raise SoundstageError(f"stage {ctx.name!r}: the tokens stage {record.name!r} recorded no token streams "
                                  f"(made by an older soundstage): re-run it with --restart {record.name}")
        available = {kind: (record.name, TokenStream.from_dict(d)) for kind, d in recorded.items()}
        problems = streams_problems(ctx.name, self.expected_streams(self.config), available)
        if problems:
            raise SoundstageError("; ".join(problems) + " (set these config keys by interpolation from the recipe's shared values)")
        makes_codes = type(self).preview_codes is not LMStage.preview_codes
        if makes_codes and self.config.preview_seconds > 0 and any("acoustic" in r.produces for r in ctx.upstream.values()):
            self.set_preview_codec(ctx.load_upstream("acoustic"))

    def build_datamodule(self, ctx: StageContext) -> L.LightningDataModule:
        from soundstage.data.token_datamodule import TokenDataModule

        outputs = ctx.upstream_for("tokens").outputs
        return TokenDataModule(
            train_shards=outputs["train_tokens"],
            val_shards=outputs.get("val_tokens"),
            batch_size=self.config.batch_size,
            streams=self.streams,
            window=self.window_tokens(self.config),
            num_workers=ctx.data.num_workers,
            batches_per_epoch=self.config.batches_per_epoch,
            shuffle_buffer=ctx.data.shuffle_buffer,
            seed=ctx.seed,
            pin_memory=ctx.data.pin_memory,
            prefetch_factor=ctx.data.prefetch_factor,
        )

    # --- training -----------------------------------------------------------------------------
    def forward(self, idx: Tensor) -> Tensor:
        """Logits [B, T, V] for token ids [B, T]."""
        return self.model(idx)

    def _loss(self, batch: TokenBatch) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor], LMBatch]:
        """Mean cross-entropy of the batch's predicted tokens, each scored within its RVQ level's ids
        (``level_loss.py``), plus the per-target (cross-entropy, correct, level) for the metrics."""
        b = self.layout.make_batch(batch)
        if b.inputs.shape[1] > self.config.model.block_size:  # the datamodule crops windows of max_seq_len
            raise SoundstageError(f"{self.stage_name or type(self).__name__}: a batch of {b.inputs.shape[1]} tokens "
                                  f"exceeds model.block_size={self.config.model.block_size}; were its token "
                                  f"windows cropped by window_tokens()?")
        inputs = b.inputs
        if self.training and self.config.input_noise > 0:
            inputs = corrupt_history(inputs, b.levels, self.config.input_noise, self.layout.level_range)
        conditions = b.conditions
        if self.training and conditions is not None and self.config.condition_dropout > 0:
            drop = torch.rand(conditions.shape[0], device=conditions.device) < self.config.condition_dropout
            drop = drop.view(-1, *[1] * (conditions.dim() - 1))
            conditions = torch.where(drop, self.layout.unconditioned(conditions), conditions)
        hidden = self.model.features(inputs, conditions=conditions)  # [B, L, C]
        scored = per_level_cross_entropy(hidden, self.model.head.weight, b.targets, b.mask, b.levels,
                                         self.layout.target_range)
        return scored[0].mean(), scored, b

    def training_step(self, batch: TokenBatch, batch_idx: int) -> Tensor:
        loss, _, b = self._loss(batch)
        n = b.inputs.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/ppl", loss.detach().exp(), batch_size=n)
        return loss

    def validation_step(self, batch: TokenBatch, batch_idx: int) -> None:
        _, (ce, correct, levels), _ = self._loss(batch)
        self.val_metrics.update(ce, correct, levels)
        if batch_idx == 0:
            self._preview_batch = batch.head(1)

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute("val")  # already reduced over ranks by torchmetrics
        self.log_dict(values)
        self.val_metrics.reset()
        self._log_preview()

    # --- audio previews -----------------------------------------------------------------------
    def set_preview_codec(self, codec: Any) -> None:
        """Decode generated codes with ``codec`` (``decode(codes [B, Q, T]) -> [B, T]``) for previews.

        Kept outside the module tree so the codec never enters this stage's checkpoint.
        """
        self.__dict__["_preview_codec"] = codec

    def preview_codes(self, batch: TokenBatch) -> Tensor | None:
        """Codes [1, Q, T] generated from one validation example (acoustic stages override)."""
        return None

    def preview_semantic(self, batch: TokenBatch) -> Tensor:
        """The first ``preview_seconds`` of a validation example's semantic ids [1, Ts] (stages conditioned on them)."""
        n = max(1, round(self.config.preview_seconds * self.config.semantic_rate))  # type: ignore[attr-defined]
        return batch.row(0)["semantic"][None, :n]

    def _log_preview(self) -> None:
        codec = self.__dict__.get("_preview_codec")
        experiment = getattr(self.logger, "experiment", None)
        batch = getattr(self, "_preview_batch", None)
        if codec is None or batch is None or not hasattr(experiment, "add_audio") or not self.trainer.is_global_zero:
            return
        codes = self.preview_codes(batch)
        if codes is None:
            return
        with torch.inference_mode():
            wave = codec.to(self.device).decode(codes.to(self.device))[0].float().clamp(-1, 1).cpu()
        experiment.add_audio(f"{self.stage_name}/generated", wave[None], self.global_step, sample_rate=int(codec.sample_rate))

    def configure_optimizers(self) -> Any:
        cfg = self.config.optim
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        optimizer = adamw(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
            betas=(cfg.beta1, cfg.beta2),
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_anneal(self._trainer, cfg.warmup_steps, cfg.min_lr_ratio))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # --- generation helpers -------------------------------------------------------------------
    def _sampling(self, temperature: float | None, top_k: int | None, top_p: float | None,
                  guidance: float | None = None) -> SamplingConfig:
        """The stage's sampling defaults with any per-call overrides."""
        d = self.config.sampling
        return replace(
            d,
            temperature=d.temperature if temperature is None else temperature,
            top_k=d.top_k if top_k is None else top_k,
            top_p=d.top_p if top_p is None else top_p,
            guidance=d.guidance if guidance is None else guidance,
        )
