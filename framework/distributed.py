"""What the runner needs to know of a multi-process job: its rank, how it was launched, barriers and
a check that every replica ended with the same weights."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from lightning.fabric.utilities.rank_zero import rank_zero_only

from .errors import SoundstageError

if TYPE_CHECKING:
    import lightning as L

    from .stage import Stage


def is_global_zero() -> bool:
    """Rank 0 of the whole job (Lightning sets the rank once a Trainer exists; env vars before)."""
    return getattr(rank_zero_only, "rank", 0) == 0


def launched_with_several_processes() -> bool:
    """torchrun / SLURM start every rank at once (Lightning's own launcher starts the others later)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 or int(os.environ.get("SLURM_NTASKS", "1")) > 1


def check_replicas_in_sync(stage: Stage, name: str) -> list[float]:
    """All ranks must end a stage with identical weights (catches DDP desyncs before they spread)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return []
    with torch.no_grad():
        flat = [p.detach().double().flatten().cpu() for p in stage.state_dict().values() if p.is_floating_point()]
        weights = torch.cat(flat) if flat else torch.zeros(1, dtype=torch.float64)
        position = torch.arange(weights.numel(), dtype=torch.float64) % 9973 + 1
        checksum = [float(weights.sum()), float((weights * position).sum())]
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, checksum)
    if any(c != gathered[0] for c in gathered):
        raise SoundstageError(f"stage {name!r}: ranks ended with different weights (checksums {gathered})")
    return checksum


def is_sharded(trainer: L.Trainer) -> bool:
    from lightning.pytorch.strategies import FSDPStrategy

    return isinstance(trainer.strategy, FSDPStrategy)


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
