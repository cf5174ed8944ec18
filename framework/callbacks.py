"""Callbacks the trainer factory adds to every stage: preemption checkpoints."""
from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_info


class PreemptionCheckpoint(L.Callback):
    """On SIGTERM (what SLURM sends before preemption), save ``last.ckpt`` at the end of the current batch.

    Lightning notices the signal, lets the batch finish and then raises ``SIGTERMException``;
    this callback runs first, so a requeued job resumes from the exact step it stopped at.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.saved_step: int | None = None

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if getattr(trainer, "received_sigterm", False) and self.saved_step != trainer.global_step:
            trainer.save_checkpoint(self.path)
            self.saved_step = trainer.global_step
            rank_zero_info(f"SIGTERM: saved {self.path} at step {trainer.global_step}; exiting so the job can resume")
