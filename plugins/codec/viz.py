"""Mel-spectrogram pictures of audio, for TensorBoard and for looking at reconstructions by eye."""
from __future__ import annotations

import torch
from torch import Tensor

from .losses import Spectrogram

# a few anchors of a dark-to-bright (magma-like) colour map, interpolated linearly
_ANCHORS = torch.tensor(
    [[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 253, 191]], dtype=torch.float32
)


def colorize(values: Tensor) -> Tensor:
    """Map values in [0, 1] of shape [H, W] to RGB uint8 [H, W, 3]."""
    pos = values.clamp(0, 1) * (len(_ANCHORS) - 1)
    lo = pos.floor().long().clamp(max=len(_ANCHORS) - 2)
    frac = (pos - lo).unsqueeze(-1)
    return ((1 - frac) * _ANCHORS[lo] + frac * _ANCHORS[lo + 1]).round().to(torch.uint8)


@torch.no_grad()
def mel_image(waves: list[Tensor], sample_rate: int, n_fft: int = 1024, n_mels: int = 80, top_db: float = 80.0) -> Tensor:
    """Log-mel pictures of 1-D waves stacked top to bottom (low frequencies at the bottom of each): uint8 [H, W, 3].

    All panels share one dB scale (the loudest panel's peak), so input and reconstruction compare fairly.
    """
    spec = Spectrogram(sample_rate, n_fft, n_mels)
    mels = [spec.log_mel(spec.magnitude(w.detach().float().cpu().view(1, -1)))[0] for w in waves]  # [n_mels, frames]
    width = max(m.shape[1] for m in mels)
    peak = max(float(m.max()) for m in mels)
    floor = peak - top_db / 20 * torch.log(torch.tensor(10.0)).item()  # top_db below the peak, in natural-log units
    panels = []
    for m in mels:
        m = torch.nn.functional.pad(m, (0, width - m.shape[1]), value=floor)
        panels.append(((m - floor) / (peak - floor)).flip(0))
        panels.append(torch.ones(2, width))  # a thin bright separator line
    return colorize(torch.cat(panels[:-1], dim=0))
