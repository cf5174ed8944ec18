"""Callbacks the trainer factory adds to every stage: the resume checkpoint."""
from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_info


class ResumeCheckpoint(L.Callback):
    """Keeps ``last.ckpt`` current at the two moments periodic checkpoints miss.

    - SIGTERM (what SLURM sends before preemption): Lightning lets the batch finish and then
      raises ``SIGTERMException``; this saves first, so a requeued job resumes at that step.
    - The end of training, so a finished stage's last state is on disk even when ``max_steps`` is
      not a multiple of the checkpoint interval.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _save(self, trainer: L.Trainer) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)  # a resume point: optimizer and loop state too

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if getattr(trainer, "received_sigterm", False):
            self._save(trainer)
            rank_zero_info(f"SIGTERM: saved {self.path} at step {trainer.global_step}; exiting so the job can resume")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)
