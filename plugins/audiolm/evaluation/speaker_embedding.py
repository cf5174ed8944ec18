"""A speaker-embedding model: the voice measure of the evaluation (cosine similarity of two clips).

AudioLM checks that continuations keep the prompt's speaker with a speaker model. This one is
trained on the TRAINING voices (conv encoder over log-mel, mean + std pooling, a 128-d embedding,
a cosine-softmax classifier over the voices, as in x-vector / AM-softmax training) and then
compares clips of voices it never saw: the classifier head is dropped and only the embedding kept.
Features are normalised with training-set statistics, not per clip, because a voice's average
spectrum is part of its identity.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .conv_encoder import ConvEncoder


@dataclass
class SpeakerEmbeddingConfig:
    """Size and training budget of the speaker-embedding model."""

    n_mels: int = 64
    channels: int = 192
    blocks: int = 4
    kernel: int = 9
    dropout: float = 0.1
    embedding_dim: int = 128
    crop_seconds: float = 2.0  # training crops
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-2
    margin: float = 0.2  # additive cosine margin (AM-softmax)
    scale: float = 30.0
    max_steps: int = 500  # fixed, so the measure does not depend on the machine's speed (~5 CPU minutes)
    max_minutes: float = 60.0  # a guard only
    seed: int = 0


class SpeakerEmbedding(nn.Module):
    """Wave [T] -> unit-norm embedding [embedding_dim]; ``similarity`` is the cosine of two clips."""

    def __init__(self, sample_rate: int, config: SpeakerEmbeddingConfig) -> None:
        super().__init__()
        from soundstage.plugins.semantic.features import MelFeatures

        self.sample_rate, self.config = int(sample_rate), config
        self.mel = MelFeatures(sample_rate, sample_rate // 100, "logmel", n_mels=config.n_mels, use_deltas=False)
        self.register_buffer("feat_mean", torch.zeros(config.n_mels))
        self.register_buffer("feat_std", torch.ones(config.n_mels))
        self.encoder = ConvEncoder(config.n_mels, config.channels, config.blocks, config.kernel, config.dropout)
        self.proj = nn.Linear(2 * config.channels, config.embedding_dim)

    @torch.no_grad()
    def features(self, wave: Tensor) -> Tensor:
        """Wave [B, T] -> globally normalised log-mel [B, F, n_mels]."""
        return (self.mel(wave.float()) - self.feat_mean) / self.feat_std

    def forward(self, feats: Tensor) -> Tensor:
        """Features [B, F, n_mels] -> unit-norm embeddings [B, D] (mean + std pooling over frames)."""
        h = self.encoder(feats)  # [B, F', C]
        pooled = torch.cat([h.mean(1), h.std(1, unbiased=False)], dim=-1)
        return F.normalize(self.proj(pooled), dim=-1)

    @torch.no_grad()
    def embed(self, waves: list[Tensor]) -> Tensor:
        """Embeddings [N, D] of 1-D waves (whole clips, one at a time)."""
        self.eval()
        device = self.proj.weight.device
        return torch.stack([self(self.features(w.float().reshape(1, -1).to(device)))[0] for w in waves]).cpu()

    def similarity(self, a: list[Tensor], b: list[Tensor]) -> Tensor:
        """Cosine similarity [N] of clip pairs ``a[i]``, ``b[i]``."""
        return (self.embed(a) * self.embed(b)).sum(-1)
