"""The shared LR schedule anneals over whichever budget runs out first: max_steps or max_time."""
from __future__ import annotations

import time

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from soundstage.lr_schedule import budget_progress, warmup_anneal


class _Regressor(L.LightningModule):
    """A linear model whose scheduler is the shared one; records the LR at every step."""

    def __init__(self, anneal_fraction: float, sleep: float = 0.0) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.anneal_fraction, self.sleep, self.lrs = anneal_fraction, sleep, []

    def training_step(self, batch, batch_idx):
        time.sleep(self.sleep)
        self.lrs.append(self.optimizers().param_groups[0]["lr"])
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=1.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_anneal(self.trainer, 2, 0.1, self.anneal_fraction))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _fit(module: L.LightningModule, **trainer_kwargs) -> None:
    data = TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, **trainer_kwargs)
    trainer.fit(module, DataLoader(data, batch_size=4))


def test_warmup_then_constant_then_cosine_over_the_last_share_of_max_steps():
    module = _Regressor(anneal_fraction=0.5)
    _fit(module, max_steps=40, max_epochs=-1)
    lrs = module.lrs
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(1.0)  # warm-up over 2 steps
    assert all(lr == pytest.approx(1.0) for lr in lrs[2:20])  # constant until half the budget
    assert all(a >= b for a, b in zip(lrs[20:], lrs[21:])) and 0.1 <= lrs[-1] < 0.12  # then down to 0.1


def test_a_wall_clock_budget_anneals_a_run_whose_step_limit_is_never_reached():
    module = _Regressor(anneal_fraction=1.0, sleep=0.05)
    _fit(module, max_steps=100_000, max_epochs=-1, max_time={"seconds": 2})
    lrs = module.lrs
    assert 10 < len(lrs) < 60
    assert lrs[-1] < 0.3 and all(a >= b - 1e-9 for a, b in zip(lrs[2:], lrs[3:]))


def test_no_budget_and_no_anneal_leave_the_rate_alone():
    class NoBudget:
        max_steps, global_step, callbacks = -1, 10, []

    assert budget_progress(NoBudget()) is None and budget_progress(None) is None
    assert warmup_anneal(NoBudget(), 0, 0.1)(10) == 1.0
    assert warmup_anneal(None, 0, 0.1, decay=0.5)(2) == 0.25  # the exponential decay alone
