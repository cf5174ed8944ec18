"""A small speaker (voice) classifier trained at evaluation time, as AudioLM used a speaker classifier
to check that continuations keep the prompt's voice.

Features of a clip: mean and standard deviation over frames of log-mel energies (a voice's timbre
and pitch range, not its words). Model: standardisation + a one-hidden-layer MLP, trained full batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class VoiceClassifierConfig:
    """Feature and training settings of the voice classifier."""

    n_mels: int = 40
    frame_ms: float = 10.0
    hidden: int = 64  # 0: logistic regression
    steps: int = 300
    lr: float = 1e-2
    weight_decay: float = 1e-3
    seed: int = 0


class VoiceFeatures(nn.Module):
    """Clip [B, T] -> [B, 2 * n_mels]: per-band mean and std of log-mel frames."""

    def __init__(self, sample_rate: int, n_mels: int = 40, frame_ms: float = 10.0) -> None:
        super().__init__()
        from soundstage.plugins.semantic.features import MelFeatures

        hop = max(1, int(round(sample_rate * frame_ms / 1000)))
        self.mel = MelFeatures(sample_rate, hop, "logmel", n_mels=n_mels, use_deltas=False)

    @torch.no_grad()
    def forward(self, wave: Tensor) -> Tensor:
        frames = self.mel(wave.float())  # [B, F, n_mels]
        return torch.cat([frames.mean(1), frames.std(1, unbiased=False)], dim=-1)


class VoiceClassifier(nn.Module):
    """Standardised features -> voice logits; ``fit`` trains it, ``predict`` returns class indices."""

    def __init__(self, dim: int, num_classes: int, hidden: int = 64) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, num_classes)) if hidden else nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.net((x - self.mean) / self.std)

    def fit(self, x: Tensor, y: Tensor, config: VoiceClassifierConfig) -> "VoiceClassifier":
        """Full-batch AdamW on features [N, D] and labels [N] (standardisation from ``x``)."""
        torch.manual_seed(config.seed)
        for m in self.net.modules():  # re-initialise from the seed so results do not depend on call order
            if isinstance(m, nn.Linear):
                m.reset_parameters()
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0, unbiased=False).clamp(min=1e-4))
        opt = torch.optim.AdamW(self.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.train()
        with torch.enable_grad():
            for _ in range(config.steps):
                loss = F.cross_entropy(self(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        return self.eval()

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        return self(x).argmax(-1)


def segments(wave: Tensor, length: int) -> list[Tensor]:
    """Non-overlapping ``length``-sample pieces of a 1-D wave (a shorter wave is one piece)."""
    if wave.shape[-1] <= length:
        return [wave]
    return [wave[i : i + length] for i in range(0, wave.shape[-1] - length + 1, length)]
