"""A small HuBERT (Hsu et al. 2021): conv feature extractor + transformer encoder + masked prediction head.

Defaults are HuBERT Base (7 conv layers, stride 320 = 50 Hz at 16 kHz, 12 x 768 transformer).
The wave is padded by ``receptive_field - hop`` before the valid convolutions, so a wave of ``T``
samples gives exactly ``T // hop`` frames, the same contract as the MFCC features.

``frontend: mel`` swaps the raw-wave conv stack for log-mel frames + one conv (w2v-BERT / BEST-RQ
style inputs): the transformer then learns from the first steps instead of waiting for the conv
stack to learn a filterbank, which is what makes a CPU-sized HuBERT iteration useful.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .configs import HubertConfig  # noqa: F401  (re-exported)


class ConvFeatureExtractor(nn.Module):
    """Strided 1-D convs on the raw wave: [B, T] -> [B, T // hop, conv_dim]."""

    def __init__(self, dim: int, kernels: list[int], strides: list[int]) -> None:
        super().__init__()
        if len(kernels) != len(strides):
            raise ValueError("conv_kernels and conv_strides must have the same length")
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        in_ch, rf, hop = 1, 1, 1
        for k, s in zip(kernels, strides):
            self.convs.append(nn.Conv1d(in_ch, dim, k, stride=s, bias=False))
            self.norms.append(nn.LayerNorm(dim))
            in_ch = dim
            rf += (k - 1) * hop
            hop *= s
        self.receptive_field, self.hop_length = rf, hop

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        frames = wave.shape[-1] // self.hop_length
        if frames == 0:  # shorter than one hop: no frame (the convs would reject the input)
            return wave.new_zeros(wave.shape[0], 0, self.convs[0].out_channels)
        left = (self.receptive_field - self.hop_length) // 2
        x = F.pad(wave[:, None], (left, self.receptive_field - self.hop_length - left))  # [B, 1, T + rf - hop]
        for conv, norm in zip(self.convs, self.norms):
            x = F.gelu(norm(conv(x).transpose(1, 2)).transpose(1, 2))  # [B, C, T_l]
        return x.transpose(1, 2)[:, :frames]  # [B, T // hop, C]


class MelFrontEnd(nn.Module):
    """Log-mel frames + a kernel-3 conv: [B, T] -> [B, T // hop, conv_dim] (same frame contract as the conv stack)."""

    def __init__(self, sample_rate: int, hop_length: int, n_mels: int, dim: int) -> None:
        super().__init__()
        from .features import MelFeatures

        self.mel = MelFeatures(sample_rate, hop_length, "logmel", n_mels=n_mels, use_deltas=False)
        self.conv = nn.Conv1d(n_mels, dim, 3, padding=1)
        self.norm = nn.LayerNorm(dim)
        self.hop_length = hop_length

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = self.mel(wave)  # [B, F, n_mels]
        if x.shape[1] == 0:  # shorter than one hop: no frame (the conv would reject the input)
            return x.new_zeros(x.shape[0], 0, self.conv.out_channels)
        # log(power + 1e-6) spans about [-14, 10]; a fixed affine map keeps the conv's inputs near unit scale.
        x = (x + 5.0) / 5.0
        return F.gelu(self.norm(self.conv(x.transpose(1, 2)).transpose(1, 2)))  # [B, F, conv_dim]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3 x [B, H, T, hd]
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]  # [B, 1, 1, T], True = attend
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), key_mask))
        return x + self.drop(self.mlp(self.norm2(x)))


def span_mask(
    frame_lengths: torch.Tensor, num_frames: int, start_prob: float, span: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """HuBERT's mask: each valid frame starts a masked span of ``span`` frames with prob ``start_prob``.

    Returns bool [B, num_frames]; every utterance gets at least one span.
    """
    b = frame_lengths.shape[0]
    device = frame_lengths.device
    valid = torch.arange(num_frames, device=device)[None] < frame_lengths[:, None]  # [B, F]
    starts = (torch.rand(b, num_frames, generator=generator, device=device) < start_prob) & valid
    # Guarantee one span per utterance so every sample contributes to the loss.
    forced = (torch.rand(b, generator=generator, device=device) * frame_lengths.clamp_min(1)).long()
    starts[torch.arange(b, device=device), forced.clamp_max(max(num_frames - 1, 0))] = True
    # A frame is masked if a span started within the previous ``span`` frames (dilation by max-pool).
    spans = F.max_pool1d(F.pad(starts[:, None].float(), (span - 1, 0)), span, stride=1)[:, 0] > 0  # [B, F]
    return spans & valid


class Hubert(nn.Module):
    """HuBERT encoder: ``features(wave, layer)`` for clustering, ``forward`` for masked prediction."""

    def __init__(self, cfg: HubertConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.frontend == "conv":
            self.feature_extractor: nn.Module = ConvFeatureExtractor(cfg.conv_dim, cfg.conv_kernels, cfg.conv_strides)
        elif cfg.frontend == "mel":
            self.feature_extractor = MelFrontEnd(cfg.sample_rate, math.prod(cfg.conv_strides), cfg.n_mels, cfg.conv_dim)
        else:
            raise ValueError(f"frontend must be 'conv' or 'mel', got {cfg.frontend!r}")
        self.feature_norm = nn.LayerNorm(cfg.conv_dim)
        self.feature_proj = nn.Linear(cfg.conv_dim, cfg.dim)
        self.mask_emb = nn.Parameter(torch.empty(cfg.dim).uniform_())
        self.pos_conv = nn.Conv1d(cfg.dim, cfg.dim, cfg.pos_conv_kernel, padding=cfg.pos_conv_kernel // 2, groups=cfg.pos_conv_groups)
        self.input_norm = nn.LayerNorm(cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.num_targets) if cfg.num_targets > 0 else None

    @property
    def hop_length(self) -> int:
        return self.feature_extractor.hop_length

    @property
    def frame_rate(self) -> float:
        return self.cfg.sample_rate / self.hop_length

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid frames per utterance for sample lengths [B]."""
        return lengths // self.hop_length

    def _hidden(
        self, wave: torch.Tensor, lengths: torch.Tensor | None, mask: torch.Tensor | None, upto: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run the conv stack and the first ``upto`` blocks; returns ([B, F, dim], key mask [B, F] or None)."""
        x = self.feature_proj(self.feature_norm(self.feature_extractor(wave)))  # [B, F, dim]
        frames = x.shape[1]
        if frames == 0:  # shorter than one hop
            return x, None
        key_mask = None
        if lengths is not None:
            key_mask = torch.arange(frames, device=x.device)[None] < self.frame_lengths(lengths).clamp_min(1)[:, None]
        if mask is not None:
            x = torch.where(mask[..., None], self.mask_emb.to(x.dtype), x)
        pos = self.pos_conv(x.transpose(1, 2))[..., :frames]  # [B, dim, F] (even kernels give one extra frame)
        x = self.drop(self.input_norm(x + F.gelu(pos).transpose(1, 2)))
        for block in self.blocks[:upto]:
            x = block(x, key_mask)
        return x, key_mask

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Target logits [B, F, num_targets] for wave [B, T]; ``mask`` [B, F] marks frames replaced by the mask embedding."""
        if self.head is None:
            raise RuntimeError("this HuBERT has no prediction head (num_targets=0)")
        x, _ = self._hidden(wave, lengths, mask, len(self.blocks))
        return self.head(self.norm(x))

    def features(self, wave: torch.Tensor, layer: int, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Output of transformer block ``layer`` (1-based; 0 = the transformer's input): [B, T // hop, dim]."""
        if not 0 <= layer <= len(self.blocks):
            raise ValueError(f"layer must be in 0..{len(self.blocks)}, got {layer}")
        return self._hidden(wave, lengths, None, layer)[0]
