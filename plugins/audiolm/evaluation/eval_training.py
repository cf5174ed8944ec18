"""What the two evaluation models share in training: a Lightning loop with a wall-clock budget and
length-bucketed batches of in-memory features (their LR anneals over the budget: ``soundstage.lr_schedule``)."""
from __future__ import annotations

import random
from typing import Any, Iterator

import torch
from torch.utils.data import Sampler


class LengthBuckets(Sampler[list[int]]):
    """Batches of indices of similar length, each holding about ``budget`` length units; reshuffled every epoch."""

    def __init__(self, lengths: list[int], budget: int, seed: int = 0) -> None:
        self.lengths, self.budget, self.rng = lengths, max(1, budget), random.Random(seed)
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        self.batches: list[list[int]] = []
        current: list[int] = []
        for i in order:
            if current and (len(current) + 1) * lengths[i] > self.budget:
                self.batches.append(current)
                current = []
            current.append(i)
        if current:
            self.batches.append(current)

    def __iter__(self) -> Iterator[list[int]]:
        batches = list(self.batches)
        self.rng.shuffle(batches)
        return iter(batches)

    def __len__(self) -> int:
        return len(self.batches)


def fit_quietly(module: Any, loader: Any, max_steps: int, max_minutes: float, log_dir: str | None = None) -> int:
    """Train ``module`` with Lightning on CPU (or the module's device) within ``max_steps`` and ``max_minutes``;
    TensorBoard events go to ``log_dir`` when given. Returns the steps done."""
    import lightning as L
    from lightning.pytorch.callbacks import TQDMProgressBar
    from lightning.pytorch.loggers import TensorBoardLogger

    from soundstage.trainer import quiet_lightning

    quiet_lightning()
    logger: Any = TensorBoardLogger(save_dir=log_dir, name="", version="", default_hp_metric=False) if log_dir else False
    trainer = L.Trainer(
        accelerator="auto", devices=1, max_steps=max_steps, max_time={"minutes": max_minutes}, logger=logger,
        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=True, log_every_n_steps=25,
        num_sanity_val_steps=0, gradient_clip_val=1.0, callbacks=[TQDMProgressBar(refresh_rate=10)],
    )
    trainer.fit(module, train_dataloaders=loader)
    return int(trainer.global_step)


def pad_frames(feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad [F_i, D] feature tensors into [B, F, D] with lengths [B]."""
    lengths = torch.tensor([f.shape[0] for f in feats])
    out = feats[0].new_zeros(len(feats), int(lengths.max()), feats[0].shape[1])
    for i, f in enumerate(feats):
        out[i, : f.shape[0]] = f
    return out, lengths
