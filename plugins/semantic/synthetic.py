"""Tiny formant-synthesis "speech" with exact phone timings, for tests and smoke benchmarks.

Each phone type is a fixed pair of formants; an utterance is a random phone sequence rendered as a
harmonic series on a per-voice pitch, shaped by the phone's formants. Far simpler than espeak-ng,
but it has what the semantic stages need: phone-dependent spectra, speaker variation, timings.
"""
from __future__ import annotations

import numpy as np
import torch


def phone_inventory(num_phones: int = 8, seed: int = 1234) -> np.ndarray:
    """Formant pairs [num_phones, 2] in Hz (F1 in 250-900, F2 in 900-2800)."""
    rng = np.random.default_rng(seed)
    f1 = rng.uniform(250, 900, num_phones)
    f2 = rng.uniform(900, 2800, num_phones)
    return np.stack([f1, f2], axis=1)


def synth_utterance(
    rng: np.random.Generator, formants: np.ndarray, sample_rate: int, seconds: float, pitch: float
) -> tuple[np.ndarray, list[dict]]:
    """One utterance: float32 wave [T] and phonemes [{"phoneme", "start", "end"}]."""
    total = int(seconds * sample_rate)
    wave = np.zeros(total, dtype=np.float64)
    phonemes, pos = [], 0
    harmonics = np.arange(1, int(4000 / pitch) + 1) * pitch  # [H]
    while pos < total:
        n = min(int(rng.uniform(0.06, 0.16) * sample_rate), total - pos)
        p = int(rng.integers(len(formants)))
        f1, f2 = formants[p]
        gain = np.exp(-((harmonics - f1) / 120.0) ** 2) + 0.7 * np.exp(-((harmonics - f2) / 180.0) ** 2) + 0.02
        t = (np.arange(n) + pos) / sample_rate
        seg = (gain[:, None] * np.sin(2 * np.pi * harmonics[:, None] * t[None] + rng.uniform(0, 2 * np.pi, (len(harmonics), 1)))).sum(0)
        wave[pos : pos + n] = seg * np.hanning(n) ** 0.25
        phonemes.append({"phoneme": f"p{p}", "start": pos / sample_rate, "end": (pos + n) / sample_rate})
        pos += n
    wave = wave / (np.abs(wave).max() + 1e-9) * 0.5 + 0.003 * rng.standard_normal(total)
    return wave.astype(np.float32), phonemes


def synthetic_corpus(
    num_utterances: int, sample_rate: int = 16000, seconds: float = 2.0, num_phones: int = 8, seed: int = 0,
    pitches: tuple[float, float] = (90.0, 220.0),
) -> list[tuple[torch.Tensor, list[dict]]]:
    """Utterances (wave [T], phonemes) from voices with random pitches in ``pitches``."""
    rng = np.random.default_rng(seed)
    formants = phone_inventory(num_phones)
    out = []
    for _ in range(num_utterances):
        wave, phones = synth_utterance(rng, formants, sample_rate, seconds, float(rng.uniform(*pitches)))
        out.append((torch.from_numpy(wave), phones))
    return out
