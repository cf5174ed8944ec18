"""``toy_regressor``: a tiny real stage (an MLP fitting a sine) that exercises the whole stage contract.

It needs no audio, so the framework's runner, resume, checkpoints and logging can be tested
in seconds; it is also the worked example in docs/writing_a_stage.md.
"""
from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import TensorDataset

from soundstage.stage import Stage, StageContext

from .spec import ToyRegressorConfig, ToyRegressorSpec


class ToyRegressorStage(ToyRegressorSpec, Stage):
    """Regresses a sine with a small MLP (declarations: ``spec.py``)."""

    def __init__(self, config: ToyRegressorConfig) -> None:
        super().__init__(config)
        self.net = nn.Sequential(nn.Linear(1, config.hidden), nn.Tanh(), nn.Linear(config.hidden, 1))

    def prepare(self, ctx: StageContext) -> None:
        if self.config.init_from_upstream:
            self.net.load_state_dict(ctx.load_upstream("toy").net.state_dict())

    def build_datamodule(self, ctx: StageContext) -> L.LightningDataModule:
        g = torch.Generator().manual_seed(ctx.seed)
        x = (torch.rand(self.config.num_samples, 1, generator=g) * 2 - 1) * math.pi
        y = torch.sin(self.config.frequency * x)
        split = self.config.num_samples // 8
        return L.LightningDataModule.from_datasets(
            train_dataset=TensorDataset(x[split:], y[split:]),
            val_dataset=TensorDataset(x[:split], y[:split]),
            batch_size=self.config.batch_size,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.config.step_delay_s:
            import time

            time.sleep(self.config.step_delay_s)
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val/loss", nn.functional.mse_loss(self(x), y), prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.config.lr)
