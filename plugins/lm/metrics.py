"""Token-level LM metrics: loss, accuracy and perplexity, overall and per RVQ level (torchmetrics)."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric


class TokenMetrics(nn.Module):
    """Running cross-entropy and accuracy over predicted tokens; perplexity = exp(mean cross-entropy).

    ``levels`` lists the RVQ levels to also report separately (empty for the semantic LM).
    torchmetrics aggregates across DDP ranks when ``compute`` is called.
    """

    def __init__(self, levels: list[int] | tuple[int, ...] = ()) -> None:
        super().__init__()
        self.levels = list(levels)
        groups = ["all"] + [f"level{q}" for q in self.levels]
        self.loss = nn.ModuleDict({g: MeanMetric() for g in groups})
        self.acc = nn.ModuleDict({g: MeanMetric() for g in groups})

    @torch.no_grad()
    def update(self, ce: Tensor, correct: Tensor, levels: Tensor) -> None:
        """Per-target cross-entropy, correctness (0/1) and RVQ level, all [N] (``per_level_cross_entropy``)."""
        selections = {"all": torch.ones_like(levels, dtype=torch.bool)} | {f"level{q}": levels == q for q in self.levels}
        for group, sel in selections.items():
            if sel.any():
                self.loss[group].update(ce[sel].float())
                self.acc[group].update(correct[sel])

    def compute(self, prefix: str) -> dict[str, Tensor]:
        """{prefix/loss, prefix/acc, prefix/ppl, prefix/level{q}/...}.

        Every group is computed on every rank (each compute is a collective under DDP).
        """
        out = {}
        for group in self.loss:
            name = prefix if group == "all" else f"{prefix}/{group}"
            loss = self.loss[group].compute()
            out[f"{name}/loss"], out[f"{name}/acc"], out[f"{name}/ppl"] = loss, self.acc[group].compute(), loss.exp()
        return out

    def reset(self) -> None:
        for metric in [*self.loss.values(), *self.acc.values()]:
            metric.reset()
