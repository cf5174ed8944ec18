"""MFCC / log-mel features with deltas in plain torch (HuBERT's first-iteration k-means inputs).

The window, mel filterbank and DCT matrix are computed once as buffers. Frame contract: a wave of
``T`` samples gives exactly ``T // hop_length`` frames; frame ``i`` is a window centred on samples
``[i * hop, (i + 1) * hop)`` (zero padding at the edges), so features line up with any other
stream on the same hop grid.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from soundstage.data.mel import mel_filterbank


def dct_matrix(n_mels: int, n_out: int) -> torch.Tensor:
    """Orthonormal DCT-II as a [n_mels, n_out] matrix (MFCC = log-mel @ dct)."""
    n = torch.arange(n_mels, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64)
    dct = torch.cos(math.pi / n_mels * (n[:, None] + 0.5) * k[None, :])
    dct[:, 0] *= 1.0 / math.sqrt(2.0)
    return (dct * math.sqrt(2.0 / n_mels)).float()


def deltas(x: torch.Tensor, width: int = 2) -> torch.Tensor:
    """Regression deltas over time of x [B, F, D] with edge replication (HTK formula)."""
    padded = F.pad(x.transpose(1, 2), (width, width), mode="replicate").transpose(1, 2)  # [B, F + 2w, D]
    frames = x.shape[1]
    num = sum(n * (padded[:, width + n : width + n + frames] - padded[:, width - n : width - n + frames]) for n in range(1, width + 1))
    return num / (2 * sum(n * n for n in range(1, width + 1)))


class MelFeatures(nn.Module):
    """Log-mel or MFCC frames (+ deltas and delta-deltas) at ``sample_rate / hop_length`` Hz.

    ``forward(wave [B, T]) -> [B, T // hop_length, dim]``.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        hop_length: int = 320,
        kind: str = "mfcc",
        n_mels: int = 40,
        n_mfcc: int = 13,
        win_ms: float = 25.0,
        use_deltas: bool = True,
    ) -> None:
        super().__init__()
        if kind not in ("mfcc", "logmel"):
            raise ValueError(f"feature kind must be 'mfcc' or 'logmel', got {kind!r}")
        self.sample_rate, self.hop_length, self.kind, self.use_deltas = sample_rate, hop_length, kind, use_deltas
        # A window shorter than the hop would skip samples; widen it to the hop at low frame rates.
        self.win_length = max(int(round(sample_rate * win_ms / 1000)), hop_length)
        self.n_fft = 1 << (self.win_length - 1).bit_length()
        self.register_buffer("window", torch.hann_window(self.win_length, periodic=True), persistent=False)
        self.register_buffer("mel_fb", mel_filterbank(sample_rate, self.n_fft, n_mels).T.contiguous(), persistent=False)
        self.register_buffer("dct", dct_matrix(n_mels, n_mfcc), persistent=False)
        base = n_mfcc if kind == "mfcc" else n_mels
        self.dim = base * (3 if use_deltas else 1)

    def num_frames(self, num_samples: int) -> int:
        """The frame contract: floor(num_samples / hop_length)."""
        return num_samples // self.hop_length

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 1:
            wave = wave[None]
        if wave.shape[-1] < self.hop_length:  # no whole frame: keep the contract with an empty result
            return wave.new_zeros(wave.shape[0], 0, self.dim)
        left = (self.win_length - self.hop_length) // 2
        right = self.win_length - self.hop_length - left
        padded = F.pad(wave.float(), (left, right))  # [B, T + win - hop]
        frames = padded.unfold(-1, self.win_length, self.hop_length)  # [B, T // hop, win]
        frames = frames - frames.mean(dim=-1, keepdim=True)  # remove DC per frame, as Kaldi does
        spec = torch.fft.rfft(frames * self.window, n=self.n_fft).abs().pow(2)  # [B, F, n_fft/2 + 1]
        feats = torch.log(spec @ self.mel_fb + 1e-6)  # [B, F, n_mels]
        if self.kind == "mfcc":
            feats = feats @ self.dct  # [B, F, n_mfcc]
        if self.use_deltas:
            d1 = deltas(feats)
            feats = torch.cat([feats, d1, deltas(d1)], dim=-1)  # [B, F, 3 * base]
        return feats
