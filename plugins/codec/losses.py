"""Codec losses: multi-scale mel + spectral reconstruction, hinge adversarial, feature matching, loss balancer.

STFT windows and mel filterbanks are built once as (non-persistent) buffers; each scale computes one
STFT magnitude per signal and derives both the log-mel L1 and the spectral-convergence/log-magnitude
terms from it.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from soundstage.data.mel import mel_filterbank


class Spectrogram(nn.Module):
    """STFT magnitude and log-mel at one resolution (hop = n_fft / 4)."""

    def __init__(self, sample_rate: int, n_fft: int, n_mels: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("mel_fb", mel_filterbank(sample_rate, n_fft, n_mels, area_normalized=True), persistent=False)

    def magnitude(self, wave: Tensor) -> Tensor:  # [B, T] -> [B, F, frames]
        spec = torch.stft(wave.float(), self.n_fft, self.hop, window=self.window, return_complex=True)
        return spec.abs()

    def log_mel(self, mag: Tensor) -> Tensor:  # [B, F, frames] -> [B, n_mels, frames]
        return torch.log(torch.clamp(self.mel_fb @ mag, min=1e-5))


class MultiScaleSpectralLoss(nn.Module):
    """Reconstruction distances over several resolutions: ``mel`` (log-mel L1) and ``stft``
    (spectral convergence + log-magnitude L1, Parallel WaveGAN), averaged over scales."""

    def __init__(self, sample_rate: int, n_ffts: list[int], n_mels: list[int]) -> None:
        super().__init__()
        if len(n_ffts) != len(n_mels):
            raise ValueError(f"one mel size per FFT size is needed, got {n_ffts} and {n_mels}")
        self.scales = nn.ModuleList(Spectrogram(sample_rate, f, m) for f, m in zip(n_ffts, n_mels))

    def forward(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:  # [B, T] each
        mel, stft = pred.new_zeros(()), pred.new_zeros(())
        for s in self.scales:
            mag_p = s.magnitude(pred)
            with torch.no_grad():
                mag_t = s.magnitude(target)
                mel_t = s.log_mel(mag_t)
            mel = mel + F.l1_loss(s.log_mel(mag_p), mel_t)
            convergence = torch.linalg.vector_norm(mag_t - mag_p) / torch.linalg.vector_norm(mag_t).clamp(min=1e-5)
            log_mag = F.l1_loss(torch.log(mag_p.clamp(min=1e-5)), torch.log(mag_t.clamp(min=1e-5)))
            stft = stft + convergence + log_mag
        n = len(self.scales)
        return {"mel": mel / n, "stft": stft / n}


def hinge_d_loss(real: list[Tensor], fake: list[Tensor]) -> Tensor:
    """Discriminator hinge loss, averaged over discriminators."""
    return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake)) / len(real)


def hinge_g_loss(fake: list[Tensor]) -> Tensor:
    """Generator hinge loss, averaged over discriminators."""
    return sum(F.relu(1 - f).mean() for f in fake) / len(fake)


def feature_matching_loss(real: list[list[Tensor]], fake: list[list[Tensor]]) -> Tensor:
    """L1 between real (detached) and fake feature maps, relative to the real maps' mean magnitude (EnCodec)."""
    total, n = 0.0, 0
    for feats_r, feats_f in zip(real, fake):
        for r, f in zip(feats_r, feats_f):
            r = r.detach()
            total = total + F.l1_loss(f, r) / r.abs().mean().clamp(min=1e-5)
            n += 1
    return total / n


class LossBalancer:
    """EnCodec's gradient balancer: the gradient of each loss w.r.t. the reconstruction is rescaled so that
    loss ``i`` contributes a ``weight_i / sum(weights)`` share of a gradient of norm ``total_norm``,
    whatever its natural scale. The gradient norms are tracked with a bias-corrected EMA (averaged over ranks).
    """

    def __init__(self, weights: dict[str, float], total_norm: float = 1.0, ema_decay: float = 0.999) -> None:
        self.weights = {k: w for k, w in weights.items() if w > 0}
        self.total_norm, self.decay = total_norm, ema_decay
        self._sum: dict[str, float] = {}
        self._fix: dict[str, float] = {}

    def gradient(self, losses: dict[str, Tensor], output: Tensor) -> tuple[Tensor, dict[str, float]]:
        """d(balanced total)/d(output) for the weighted ``losses`` (each must depend on ``output``)."""
        names = [k for k in self.weights if k in losses]
        grads = {k: torch.autograd.grad(losses[k], output, retain_graph=True)[0] for k in names}
        norms = torch.stack([grads[k].flatten(1).norm(dim=1).mean() for k in names])  # per-item norm, batch mean
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(norms)
            norms /= dist.get_world_size()
        avg = {}
        for k, value in zip(names, norms.tolist()):
            self._sum[k] = self.decay * self._sum.get(k, 0.0) + value
            self._fix[k] = self.decay * self._fix.get(k, 0.0) + 1.0
            avg[k] = self._sum[k] / self._fix[k]
        total_w = sum(self.weights[k] for k in names)
        out = torch.zeros_like(output)
        for k in names:
            out += grads[k] * (self.weights[k] / total_w * self.total_norm / (avg[k] + 1e-12))
        return out, avg
