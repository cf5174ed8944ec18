"""Semantic plausibility of continuations: the semantic LM's perplexity of the re-tokenised generated
audio next to its perplexity of the real audio that followed the same prompts (AudioLM's check that
continuations are speech-like, not just the LM agreeing with itself)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .lm_eval import perplexity, semantic_nll
from .run_dir import module_device


@torch.no_grad()
def semantic_perplexity(tokenizer: Any, semantic_lm: Any, generated: list[np.ndarray], real: list[np.ndarray]) -> dict[str, Any]:
    """Perplexity of each generated clip and of its real counterpart, over the same number of ids."""
    device = module_device(tokenizer)
    totals = {"continuation": [0.0, 0], "real": [0.0, 0]}
    for gen_wave, real_wave in zip(generated, real):
        gen = tokenizer.encode(torch.from_numpy(gen_wave).to(device)[None])  # [1, Ts]
        ref = tokenizer.encode(torch.from_numpy(real_wave).to(device)[None])
        n = min(gen.shape[1], ref.shape[1])
        if n == 0:
            continue
        for name, ids in (("continuation", gen[:, :n]), ("real", ref[:, :n])):
            nll, count = semantic_nll(semantic_lm, ids)
            totals[name][0] += nll
            totals[name][1] += count
    ppl = {name: perplexity(*t) for name, t in totals.items()}
    return {
        "continuation_ppl": ppl["continuation"],
        "real_ppl": ppl["real"],
        "ratio": ppl["continuation"] / ppl["real"] if ppl["real"] > 0 else float("nan"),
        "tokens": totals["real"][1],
    }
