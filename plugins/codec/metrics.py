"""Validation metrics of the codec (torchmetrics, so they sum correctly over batches and DDP ranks)."""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.audio import ScaleInvariantSignalNoiseRatio

from .losses import MultiScaleSpectralLoss

__all__ = ["ScaleInvariantSignalNoiseRatio", "MelDistance", "STFTDistance", "bitrate"]


class _SpectralDistance(Metric):
    """Mean over clips of one term of ``MultiScaleSpectralLoss`` at fixed resolutions."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    term = ""

    def __init__(self, sample_rate: int, n_ffts: list[int], n_mels: list[int], **kwargs) -> None:
        super().__init__(**kwargs)
        self.spectral = MultiScaleSpectralLoss(sample_rate, n_ffts, n_mels)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:  # [B, T] each, one clip length per call
        value = self.spectral(preds.float(), target.float())[self.term]  # mean over the batch
        self.total += value.double() * preds.shape[0]
        self.count += preds.shape[0]

    def compute(self) -> Tensor:
        return (self.total / self.count.clamp(min=1)).float()


class MelDistance(_SpectralDistance):
    """L1 distance between log-mel spectrograms (default: 1024-point FFT, 80 mels), lower is better."""

    term = "mel"

    def __init__(self, sample_rate: int, n_fft: int = 1024, n_mels: int = 80, **kwargs) -> None:
        super().__init__(sample_rate, [n_fft], [n_mels], **kwargs)


class STFTDistance(_SpectralDistance):
    """Multi-resolution STFT distance (spectral convergence + log-magnitude L1 at 512/1024/2048), lower is better."""

    term = "stft"

    def __init__(self, sample_rate: int, n_ffts: tuple[int, ...] = (512, 1024, 2048), **kwargs) -> None:
        super().__init__(sample_rate, list(n_ffts), [64] * len(n_ffts), **kwargs)


def bitrate(num_quantizers: int, codebook_size: int, frame_rate: float) -> float:
    """Bits per second of the codes: levels x log2(codebook size) x frames per second."""
    return num_quantizers * math.log2(codebook_size) * frame_rate
