"""Trainer factory: a ``lightning.Trainer`` from a recipe's typed ``trainer`` section."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional


@dataclass
class TrainerConfig:
    """Recipe keys that configure Lightning's Trainer (per-stage overrides merge on top)."""

    accelerator: str = "auto"
    devices: Any = "auto"  # int, list of ids or "auto"
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | ddp_spawn | fsdp | ...
    precision: str = "32-true"  # 32-true | bf16-mixed | 16-mixed
    max_steps: int = -1
    max_epochs: Optional[int] = None
    accumulate_grad_batches: int = 1
    gradient_clip_val: Optional[float] = None
    val_check_interval: Optional[float] = None  # steps (int-valued) or fraction of an epoch
    check_val_every_n_epoch: Optional[int] = 1
    limit_val_batches: Optional[float] = None
    num_sanity_val_steps: int = 0
    log_every_n_steps: int = 10
    checkpoint_every_n_steps: int = 100
    enable_progress_bar: bool = True
    deterministic: bool = False
    benchmark: bool = False
