"""SoundStream's discriminators: multi-scale STFT (EnCodec's MS-STFTD) and multi-scale waveform (MelGAN).

Each discriminator returns its logits and the feature maps of every layer (for feature matching).
``Discriminators`` runs both on one batch; the stage feeds it real and fake audio concatenated,
so one forward serves the discriminator loss, the adversarial loss and feature matching.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import WNConv1d, WNConv2d

Features = list[Tensor]


class WaveDiscriminator(nn.Module):
    """MelGAN discriminator on one waveform scale: grouped strided 1-D convs."""

    def __init__(self, channels: int = 16, max_channels: int = 1024, downsamples: int = 4) -> None:
        super().__init__()
        convs = [WNConv1d(1, channels, 15, padding=7)]
        ch = channels
        for _ in range(downsamples):
            out = min(ch * 4, max_channels)
            convs.append(WNConv1d(ch, out, 41, stride=4, padding=20, groups=max(1, ch // 4)))
            ch = out
        convs.append(WNConv1d(ch, ch, 5, padding=2))
        self.convs = nn.ModuleList(convs)
        self.out = WNConv1d(ch, 1, 3, padding=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Features]:  # [B, 1, T] -> logits [B, 1, T / 4^n]
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            feats.append(x)
        return self.out(x), feats


class MultiScaleWaveDiscriminator(nn.Module):
    """``scales`` MelGAN discriminators on the waveform average-pooled by 1, 2, 4, ..."""

    def __init__(self, scales: int = 3, channels: int = 16, max_channels: int = 1024, downsamples: int = 4) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            WaveDiscriminator(channels, max_channels, downsamples) for _ in range(scales)
        )

    def forward(self, wave: Tensor) -> tuple[list[Tensor], list[Features]]:  # [B, T]
        x = wave.unsqueeze(1)
        logits, feats = [], []
        for i, disc in enumerate(self.discriminators):
            if i > 0:
                x = F.avg_pool1d(x, 4, stride=2, padding=1, count_include_pad=False)
            lg, ft = disc(x)
            logits.append(lg)
            feats.append(ft)
        return logits, feats


class STFTDiscriminator(nn.Module):
    """2-D conv discriminator on the complex STFT (real and imaginary parts as 2 channels), EnCodec style."""

    def __init__(self, n_fft: int, channels: int = 32, dilations: tuple[int, ...] = (1, 2, 4)) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        convs = [WNConv2d(2, channels, (3, 9), padding=(1, 4))]
        ch = channels
        for d in dilations:  # dilate in time, stride 2 in frequency; constant width (EnCodec's filters_scale=1)
            convs.append(WNConv2d(ch, ch, (3, 9), stride=(1, 2), dilation=(d, 1), padding=(d, 4)))
        convs.append(WNConv2d(ch, ch, (3, 3), padding=(1, 1)))
        self.convs = nn.ModuleList(convs)
        self.out = WNConv2d(ch, 1, (3, 3), padding=(1, 1))

    def forward(self, wave: Tensor) -> tuple[Tensor, Features]:  # [B, T]
        spec = torch.stft(wave.float(), self.n_fft, self.hop, window=self.window, return_complex=True)
        x = torch.view_as_real(spec).permute(0, 3, 2, 1).to(wave.dtype)  # [B, 2, frames, freq]
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            feats.append(x)
        return self.out(x), feats


class MultiScaleSTFTDiscriminator(nn.Module):
    """One ``STFTDiscriminator`` per FFT size."""

    def __init__(self, n_ffts: list[int], channels: int = 32) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(STFTDiscriminator(n, channels) for n in n_ffts)

    def forward(self, wave: Tensor) -> tuple[list[Tensor], list[Features]]:
        outs = [d(wave) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


class Discriminators(nn.Module):
    """All discriminators of the codec; ``forward`` returns every logit map and feature list."""

    def __init__(self, stft_ffts: list[int], stft_channels: int, wave_scales: int, wave_channels: int,
                 max_channels: int = 1024) -> None:  # max_channels: of the waveform discriminators
        super().__init__()
        self.stft = MultiScaleSTFTDiscriminator(stft_ffts, stft_channels) if stft_ffts else None
        self.wave = MultiScaleWaveDiscriminator(wave_scales, wave_channels, max_channels) if wave_scales else None
        if self.stft is None and self.wave is None:
            raise ValueError("at least one discriminator is needed (stft_disc_ffts or wave_disc_scales)")

    def forward(self, wave: Tensor) -> tuple[list[Tensor], list[Features]]:  # [B, T]
        logits, feats = [], []
        for disc in (self.stft, self.wave):
            if disc is not None:
                lg, ft = disc(wave)
                logits += lg
                feats += ft
        return logits, feats
