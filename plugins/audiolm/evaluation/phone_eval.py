"""Semantic-token figures: phone purity, cluster purity and PNMI against the corpus' phoneme timings."""
from __future__ import annotations

from typing import Any

import torch

from soundstage.data.utterances import Utterance
from soundstage.plugins.semantic.phone_metrics import PhoneClusterCounts, frame_phone_labels

from .run_dir import module_device


@torch.no_grad()
def semantic_phone_metrics(tokenizer: Any, utterances: list[Utterance], max_seconds: float = 20.0) -> dict[str, Any]:
    """PNMI etc. of the tokenizer's ids on utterances with phoneme timings; a ``skipped`` note when none has any."""
    labelled = [u for u in utterances if u.phonemes]
    if not labelled:
        return {"skipped": "no phoneme timings in the held-out audio (e.g. music)"}
    device = module_device(tokenizer)
    counts = PhoneClusterCounts()
    for utt in labelled:
        wave = torch.from_numpy(utt.wave[: int(max_seconds * tokenizer.sample_rate)]).to(device)[None]  # [1, T]
        ids = tokenizer.encode(wave)[0]  # [Ts]
        counts.update(ids.cpu(), frame_phone_labels(utt.phonemes, len(ids), tokenizer.frame_rate))
    out: dict[str, Any] = dict(counts.compute())
    out["utterances"] = len(labelled)
    out["tokens_used"] = len({z for z, _ in counts.counts})
    out["vocab_size"] = int(tokenizer.vocab_size)
    return out
