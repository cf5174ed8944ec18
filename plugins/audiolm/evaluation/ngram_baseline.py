"""Unigram and bigram baselines for an LM stage, on the same token windows its validation scores.

A validation perplexity means little alone: these baselines say whether the LM learned more
than token frequencies (unigram) and one-step transitions (bigram). Counts come from the training
token shards laid out by the stage's own layout; the bigram is interpolated absolute discounting
(Kneser-Ney's discount without its continuation counts), backed off to the add-0.5 unigram.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

DISCOUNT = 0.75


class BigramCounts:
    """Counts of a vocabulary-``V`` token stream: unigrams of targets, bigrams of (previous, target)."""

    def __init__(self, vocab_size: int) -> None:
        self.V = vocab_size
        self.uni = torch.zeros(vocab_size, dtype=torch.float64)
        self.bi = torch.zeros(vocab_size, vocab_size, dtype=torch.float64)

    def update(self, inputs: Tensor, targets: Tensor, mask: Tensor) -> None:
        """Count (input -> target) pairs where ``mask`` holds; all [B, L]."""
        prev, nxt = inputs[mask].long().cpu(), targets[mask].long().cpu()
        self.uni += torch.bincount(nxt, minlength=self.V).double()
        self.bi.view(-1).index_add_(0, prev * self.V + nxt, torch.ones(len(nxt), dtype=torch.float64))

    def log_probs(self) -> tuple[Tensor, Tensor]:
        """(log P_uni [V], log P_bi [V, V]) with the smoothing described above."""
        p_uni = (self.uni + 0.5) / (self.uni.sum() + 0.5 * self.V)
        context = self.bi.sum(1, keepdim=True)  # [V, 1]
        types = (self.bi > 0).sum(1, keepdim=True).double()
        safe = context.clamp(min=1.0)
        p_bi = (self.bi - DISCOUNT).clamp(min=0) / safe + (DISCOUNT * types / safe) * p_uni[None]
        p_bi = torch.where(context > 0, p_bi, p_uni[None].expand_as(p_bi))  # unseen context: the unigram
        return p_uni.log(), p_bi.log()


def _batches(stage: Any, tokens: str, batch_size: int, max_batches: int | None):  # type: ignore[no-untyped-def]
    """The stage's (inputs, targets, mask) of the first windows of ``tokens`` (as its validation crops them)."""
    from soundstage.data.token_datamodule import TokenDataModule

    dm = TokenDataModule(tokens, tokens, batch_size, streams=stage.streams, window=stage.window_tokens(stage.config))
    for i, batch in enumerate(dm.val_dataloader()):
        if max_batches is not None and i >= max_batches:
            return
        b = stage.layout.make_batch(batch)
        yield b.inputs, b.targets, b.mask


@torch.no_grad()
def ngram_baselines(stage: Any, train_tokens: str, val_tokens: str, batch_size: int = 8,
                    max_train_batches: int | None = 2000, max_val_batches: int | None = 50) -> dict[str, Any]:
    """Unigram and bigram perplexity of the stage's validation windows, counted on its training token shards."""
    counts = BigramCounts(stage.layout.vocab_size)
    for inputs, targets, mask in _batches(stage, train_tokens, batch_size, max_train_batches):
        counts.update(inputs, targets, mask)
    log_uni, log_bi = counts.log_probs()
    nll_uni = nll_bi = 0.0
    n = 0
    for inputs, targets, mask in _batches(stage, val_tokens, batch_size, max_val_batches):
        prev, nxt = inputs[mask].long().cpu(), targets[mask].long().cpu()
        nll_uni -= float(log_uni[nxt].sum())
        nll_bi -= float(log_bi[prev, nxt].sum())
        n += len(nxt)
    if n == 0:
        return {"tokens": 0}
    return {"unigram_ppl": math.exp(nll_uni / n), "bigram_ppl": math.exp(nll_bi / n), "tokens": n,
            "train_tokens": int(counts.uni.sum())}
