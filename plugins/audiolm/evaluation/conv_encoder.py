"""The small convolutional log-mel encoder both evaluation models use (phone recognizer, speaker embedding).

A ConvNeXt-style 1-D stack: a strided input convolution (100 Hz log-mel -> 50 Hz) and residual
blocks of depthwise convolution, LayerNorm and a pointwise MLP. Convolutions keep CPU training
fast (no recurrence) and a few blocks of kernel 9 see about half a second, enough for phones.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class ConvBlock(nn.Module):
    """x + MLP(LN(depthwise_conv(x))) over [B, C, F]."""

    def __init__(self, channels: int, kernel: int = 9, expansion: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.dw = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(
            nn.Linear(channels, expansion * channels), nn.GELU(), nn.Dropout(dropout), nn.Linear(expansion * channels, channels)
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(self.dw(x).transpose(1, 2))  # [B, F, C]
        return x + self.mlp(h).transpose(1, 2)


class ConvEncoder(nn.Module):
    """Log-mel frames [B, F, n_mels] -> hidden frames [B, ceil(F / 2), channels]."""

    def __init__(self, n_mels: int, channels: int = 256, blocks: int = 6, kernel: int = 9, dropout: float = 0.1) -> None:
        super().__init__()
        self.inp = nn.Conv1d(n_mels, channels, 5, stride=2, padding=2)
        self.blocks = nn.Sequential(*[ConvBlock(channels, kernel, dropout=dropout) for _ in range(blocks)])
        self.norm = nn.LayerNorm(channels)

    def forward(self, feats: Tensor) -> Tensor:
        x = self.blocks(self.inp(feats.transpose(1, 2)))  # [B, C, F']
        return self.norm(x.transpose(1, 2))

    @staticmethod
    def out_frames(frames: Tensor | int) -> Tensor | int:
        """Output frames of the stride-2 input convolution for ``frames`` input frames."""
        return (frames + 1) // 2


def spec_augment(feats: Tensor, generator: torch.Generator, time_masks: int = 2, time_width: int = 10,
                 freq_masks: int = 2, freq_width: int = 10) -> Tensor:
    """SpecAugment-style masking of [B, F, D] features (a copy; masked cells set to 0, the normalised mean)."""
    out = feats.clone()
    B, F, D = out.shape
    for b in range(B):
        for _ in range(time_masks):
            w = int(torch.randint(0, time_width + 1, (1,), generator=generator))
            t0 = int(torch.randint(0, max(1, F - w), (1,), generator=generator))
            out[b, t0 : t0 + w] = 0.0
        for _ in range(freq_masks):
            w = int(torch.randint(0, freq_width + 1, (1,), generator=generator))
            f0 = int(torch.randint(0, max(1, D - w), (1,), generator=generator))
            out[b, :, f0 : f0 + w] = 0.0
    return out
