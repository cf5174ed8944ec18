"""The ``pretrained_codec`` stage: a published EnCodec, DAC or Mimi checkpoint as the codec (acoustic tokens).

Fills the role of the trained ``soundstream`` codec with the same interface (``encode``, ``decode``,
``sample_rate``, ``frame_rate``, ``hop_length``, ``codebook_size``, ``num_quantizers``), so tokenize,
the LM stages, generation, export and eval use it unchanged.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from soundstage.errors import SoundstageError
from soundstage.plugins.roles import CodecStage

from .base import PretrainedCodecBase
from .config import PretrainedCodecConfig, codec_levels
from .spec import PretrainedCodecSpec


class PretrainedCodecStage(PretrainedCodecSpec, PretrainedCodecBase, CodecStage):
    """A local EnCodec / DAC / Mimi checkpoint as the codec: audio -> acoustic tokens [B, Q, T'] (not trained)."""

    config: PretrainedCodecConfig

    def __init__(self, config: PretrainedCodecConfig, model: Any = None) -> None:
        super().__init__(config, model)
        levels, _ = codec_levels(config, self.facts)  # problems were raised by the base class
        self.levels = int(levels)  # type: ignore[arg-type]

    # --- the codec interface ------------------------------------------------------------------------
    @property
    def num_quantizers(self) -> int:
        return self.levels

    @property
    def codebook_size(self) -> int:
        return self.facts.codebook_size

    def num_frames(self, num_samples: int) -> int:
        """Code frames for a clip of ``num_samples`` samples."""
        return self.codec.num_frames(num_samples)

    @torch.no_grad()
    def encode(self, wave: Tensor, num_quantizers: int | None = None) -> Tensor:
        """Waveform [B, T] (or [T]) -> int64 codes [B, Q, ceil(T / hop)] with the first ``num_quantizers`` levels."""
        levels = self.levels if num_quantizers is None else int(num_quantizers)
        if not 1 <= levels <= self.levels:
            raise ValueError(f"num_quantizers must be in 1..{self.levels}, got {num_quantizers}")
        squeeze = wave.dim() == 1
        codes = self.codec.encode(wave.view(1, -1) if squeeze else wave, levels)
        return codes[0] if squeeze else codes

    @torch.no_grad()
    def decode(self, codes: Tensor, length: int | None = None) -> Tensor:
        """int64 codes [B, Q, T'] (or [Q, T']) -> waveform [B, T' * hop], cut to ``length`` samples if given."""
        squeeze = codes.dim() == 2
        wave = self.codec.decode(codes.unsqueeze(0) if squeeze else codes)
        wave = wave if length is None else wave[..., :length]
        return wave[0] if squeeze else wave

    # --- job ------------------------------------------------------------------------------------------
    def token_info(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "frame_rate": self.frame_rate, "hop_length": self.hop_length,
                "num_quantizers": self.num_quantizers, "codebook_size": self.codebook_size}

    def probe(self, wave: Tensor) -> dict[str, Any]:
        codes = self.encode(wave)
        frames = self.num_frames(wave.shape[-1])
        if codes.shape != (1, self.levels, frames) or int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size:
            raise SoundstageError(f"{self.stage_name}: the codec made codes of shape {tuple(codes.shape)} in "
                                  f"[{int(codes.min())}, {int(codes.max())}]; expected (1, {self.levels}, {frames}) "
                                  f"below {self.codebook_size}")
        out = self.decode(codes)
        return {"seconds": wave.shape[-1] / self.sample_rate, "frames": frames, "decoded_samples": int(out.shape[-1])}
