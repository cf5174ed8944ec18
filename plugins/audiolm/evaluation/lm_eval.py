"""LM figures: validation loss / perplexity of each LM stage on its token shards, and the semantic
LM's perplexity of given id sequences (used to score continuations against real speech)."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from soundstage.data.token_batch import TokenBatch

from .run_dir import module_device


@torch.no_grad()
def lm_validation(stage: Any, val_tokens: str, batch_size: int = 8, max_batches: int | None = 50) -> dict[str, Any]:
    """The stage's own validation step (its token layout and loss mask) over the first windows of ``val_tokens``.

    Returns loss (nats / token), perplexity and accuracy, overall and per RVQ level (``levels``).
    """
    from soundstage.data.token_datamodule import TokenDataModule

    dm = TokenDataModule(
        val_tokens, val_tokens, batch_size, streams=stage.streams, window=stage.window_tokens(stage.config)
    )
    device = module_device(stage)
    stage.val_metrics.reset()
    batches = 0
    for i, batch in enumerate(dm.val_dataloader()):
        if max_batches is not None and i >= max_batches:
            break
        batch = batch.to(device)
        stage.validation_step(batch, i)  # updates stage.val_metrics (TokenMetrics)
        batches += 1
    if batches == 0:
        return {"batches": 0}
    values = {k: float(v) for k, v in stage.val_metrics.compute("val").items()}
    stage.val_metrics.reset()
    out: dict[str, Any] = {"loss": values["val/loss"], "ppl": values["val/ppl"], "acc": values["val/acc"], "batches": batches}
    levels = {}
    for key, v in values.items():
        parts = key.split("/")  # val/level{q}/{loss,acc,ppl}
        if len(parts) == 3:
            levels.setdefault(parts[1], {})[parts[2]] = v
    if levels:
        out["levels"] = levels
    return out


@torch.no_grad()
def semantic_nll(semantic_lm: Any, ids: Tensor) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) and token count of semantic ids [B, T] under the semantic LM,
    each row scored from BOS; rows longer than the block are cut."""
    layout = semantic_lm.layout
    device = module_device(semantic_lm)
    ids = ids.to(device)
    b = layout.make_batch(TokenBatch.whole(semantic=ids))
    block = semantic_lm.config.model.block_size
    inputs, targets, mask = b.inputs[:, :block], b.targets[:, :block], b.mask[:, :block]
    logits = semantic_lm(inputs)  # [B, L, V]
    ce = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none").view_as(targets)
    return float(ce[mask].sum()), int(mask.sum())


def perplexity(nll: float, count: int) -> float:
    """exp(mean NLL); NaN when nothing was scored."""
    return math.exp(nll / count) if count else float("nan")
