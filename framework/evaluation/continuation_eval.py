"""Continuation figures: does the generated part keep the prompt's voice, and how likely are its
semantic tokens under the semantic LM compared with real speech of the same length?"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .run_dir import module_device
from .lm_eval import perplexity, semantic_nll
from .utterances import Utterance
from .voice_eval import TrainedVoiceClassifier

MIN_PROMPT_SECONDS = 0.5


@dataclass
class Example:
    """One prompt and what became of it (waves [T] at the pipeline's rate)."""

    key: str
    voice: str | None
    prompt: np.ndarray
    continuation: np.ndarray  # the generated part only
    real: np.ndarray  # real speech of the continuation's length (what followed the prompt where there is enough)
    predicted_voice: str | None = None
    real_predicted_voice: str | None = None


def make_prompt(utt: Utterance, prompt_seconds: float, seconds: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(prompt, real reference) of an utterance: its first ``prompt_seconds`` (shortened for short
    utterances, never below 0.5 s) and the ``seconds`` of real audio after it (or its start if too short)."""
    n = len(utt.wave)
    p = max(int(MIN_PROMPT_SECONDS * sample_rate), min(int(prompt_seconds * sample_rate), n // 2))
    length = int(seconds * sample_rate)
    real = utt.wave[p : p + length] if n - p >= length else utt.wave[:length]
    return utt.wave[:p], real


def generate_examples(pipeline: Any, prompts: list[tuple[Utterance, str | None]], prompt_seconds: float,
                      seconds: float, seed: int) -> list[Example]:
    """Continue each prompt by ``seconds`` (the generated part only is kept)."""
    sr = pipeline.sample_rate
    out = []
    for i, (utt, voice) in enumerate(prompts):
        prompt, real = make_prompt(utt, prompt_seconds, seconds, sr)
        cont = pipeline.continue_audio(prompt, seconds, sample_rate=sr, include_prompt=False, seed=seed + i)  # [1, T]
        out.append(Example(utt.key, voice, prompt, cont[0].float().cpu().numpy(), real))
    return out


def voice_consistency(classifier: TrainedVoiceClassifier, examples: list[Example]) -> dict[str, Any]:
    """Share of continuations (and of the real audio after the same prompts) classified as the prompt's voice."""
    examples = [e for e in examples if e.voice is not None]
    if not examples:
        return {"skipped": "no prompts with a known voice"}
    gen = classifier.classify([torch.from_numpy(e.continuation) for e in examples])
    real = classifier.classify([torch.from_numpy(e.real) for e in examples])
    for e, g, r in zip(examples, gen, real):
        e.predicted_voice, e.real_predicted_voice = g, r
    return {
        "prompts": len(examples),
        "continuation_accuracy": float(np.mean([e.predicted_voice == e.voice for e in examples])),
        "real_audio_accuracy": float(np.mean([e.real_predicted_voice == e.voice for e in examples])),
    }


@torch.no_grad()
def semantic_perplexity(tokenizer: Any, semantic_lm: Any, examples: list[Example]) -> dict[str, Any]:
    """Semantic-LM perplexity of the re-tokenised continuations vs. of the real audio (same number of ids)."""
    device = module_device(tokenizer)
    totals = {"continuation": [0.0, 0], "real": [0.0, 0]}
    for e in examples:
        gen = tokenizer.encode(torch.from_numpy(e.continuation).to(device)[None])  # [1, Ts]
        real = tokenizer.encode(torch.from_numpy(e.real).to(device)[None])
        n = min(gen.shape[1], real.shape[1])
        if n == 0:
            continue
        for name, ids in (("continuation", gen[:, :n]), ("real", real[:, :n])):
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
