"""Best-of-N's measure for the coarse LM: how far candidate codes' audio is from the semantic ids it was
drawn for. Decodes the new frames (after some context) with the codec, re-tokenizes them with the
semantic tokenizer and averages, over the semantic frames the new codes cover, the cost of the wanted
id: its centroid's distance minus the nearest centroid's (tokenizers with ``token_costs``: k-means),
or 1 where the re-tokenized id differs (any other tokenizer)."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor


class SemanticScorer:
    """A ``CandidateScorer`` (``stages.py``) over a codec and a semantic tokenizer."""

    def __init__(self, tokenizer: Any, codec: Any, acoustic_rate: float, semantic_rate: float,
                 context_seconds: float = 1.0) -> None:
        self.tokenizer, self.codec = tokenizer, codec
        self.ratio = acoustic_rate / semantic_rate  # codec frames per semantic id
        self.context = max(0, round(context_seconds * semantic_rate))  # semantic ids of context before the new ones

    @torch.inference_mode()
    def __call__(self, codes: Tensor, semantic: Tensor, t0: int) -> Tensor:
        t1 = codes.shape[-1]
        lo, hi = math.ceil(t0 / self.ratio - 1e-9), math.floor(t1 / self.ratio + 1e-9)  # ids wholly in [t0, t1)
        if hi <= lo:  # a chunk shorter than one semantic id: the ids it touches
            lo, hi = math.floor(t0 / self.ratio), math.ceil(t1 / self.ratio)
        hi = min(hi, semantic.shape[1])
        if hi <= lo:
            return torch.zeros(codes.shape[0])
        start = max(0, lo - self.context)
        wave = self.codec.decode(codes[..., round(start * self.ratio):])  # [N, T]
        want = semantic[:, lo:hi]
        if hasattr(self.tokenizer, "token_costs"):
            costs = self.tokenizer.token_costs(wave)[:, lo - start : hi - start]  # [N, F, V]
            want = want[:, : costs.shape[1]].to(costs.device)
            cost = costs.gather(-1, want[..., None])[..., 0] - costs.min(dim=-1).values
        else:
            ids = self.tokenizer.encode(wave)[:, lo - start : hi - start]
            cost = (ids != want[:, : ids.shape[1]].to(ids.device)).float()
        return cost.mean(dim=1).cpu() if cost.shape[1] else torch.zeros(codes.shape[0])
