"""Mel scale and triangular mel filterbanks: the one implementation the codec losses, the semantic
features and the evaluation's recognizers share."""
from __future__ import annotations

import torch


def hz_to_mel(f: torch.Tensor | float) -> torch.Tensor:
    """HTK mel scale."""
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f, dtype=torch.float64) / 700.0)


def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None,
                   area_normalized: bool = False) -> torch.Tensor:
    """Triangular HTK-mel filters [n_mels, n_fft // 2 + 1] over an ``n_fft``-point spectrum.

    ``area_normalized``: each filter scaled to unit area (Slaney's normalisation, the codec's mel loss);
    otherwise peaks of 1 (torchaudio's default, the semantic features).
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = mel_to_hz(torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2, dtype=torch.float64))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs - lower) / (centre - lower)
    down = (upper - freqs) / (upper - centre)
    fb = torch.clamp(torch.minimum(up, down), min=0.0)
    if area_normalized:
        fb = fb * (2.0 / (upper - lower))
    return fb.float()
