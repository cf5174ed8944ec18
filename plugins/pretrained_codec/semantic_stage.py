"""The ``mimi_semantic`` stage: the first codebook of a Mimi checkpoint as semantic tokens.

Mimi's first RVQ level is distilled from WavLM (Défossez et al. 2024, "Moshi"), so its ids carry
phonetic content at Mimi's frame rate (12.5 Hz). This stage fills the semantic-tokenizer role with
them: ``encode(wave [B, T]) -> [B, T // hop]`` (whole frames, the semantic tokenizers' contract),
``vocab_size`` = Mimi's codebook size. The LMs' semantic rate and vocabulary are validated against it.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from soundstage.errors import SoundstageError
from soundstage.plugins.roles import SemanticTokenizerStage

from .base import PretrainedCodecBase
from .config import MimiSemanticConfig
from .spec import MimiSemanticSpec


class MimiSemanticStage(MimiSemanticSpec, PretrainedCodecBase, SemanticTokenizerStage):
    """Mimi's first (WavLM-distilled) codebook as semantic tokens: ``encode(wave [B, T]) -> int64 ids [B, T // hop]``."""

    config: MimiSemanticConfig

    @property
    def vocab_size(self) -> int:
        return self.facts.codebook_size

    def num_frames(self, num_samples: int) -> int:
        """Whole token frames in ``num_samples`` samples (floor, as every semantic tokenizer here)."""
        f = self.facts
        return num_samples * f.sample_rate // (f.hop_length * self.sample_rate)

    @torch.no_grad()
    def encode(self, wave: Tensor) -> Tensor:
        """Waveform [B, T] (or [T]) -> int64 ids [B, T // hop] of Mimi's first codebook."""
        squeeze = wave.dim() == 1
        wave = wave.view(1, -1) if squeeze else wave
        frames = self.num_frames(wave.shape[-1])
        ids = self.codec.encode(wave, 1)[:, 0, :frames]  # the codec's ceil() frame may cover a partial frame
        return ids[0] if squeeze else ids

    def token_info(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "frame_rate": self.frame_rate, "vocab_size": self.vocab_size}

    def probe(self, wave: Tensor) -> dict[str, Any]:
        ids = self.encode(wave)
        frames = self.num_frames(wave.shape[-1])
        if ids.shape != (1, frames) or int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size:
            raise SoundstageError(f"{self.stage_name}: Mimi made ids of shape {tuple(ids.shape)}; expected (1, {frames}) "
                                  f"below {self.vocab_size}")
        return {"seconds": wave.shape[-1] / self.sample_rate, "frames": frames}
