"""Distributed strategies the trainer factory picks for stages Lightning's defaults do not fit."""
from __future__ import annotations

import torch
from lightning.pytorch.strategies import DDPStrategy


def has_trainable_parameters(module: torch.nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


class ParameterFreeDDPStrategy(DDPStrategy):
    """DDP that leaves a module without trainable parameters unwrapped.

    torch's ``DistributedDataParallel`` refuses such a module; stages like k-means all-reduce their
    own statistics, so the processes, the rank split of the data and the barriers are all they need.
    """

    def configure_ddp(self) -> None:
        if has_trainable_parameters(self.model):
            super().configure_ddp()
