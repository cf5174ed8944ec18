"""The codec families a ``transformers`` checkpoint may hold: what each declares and how it encodes and decodes.

Facts (rates, sizes) are read from the checkpoint's config object, the same way for `recipe
validate` (config.json only) and for a loaded model, so both see the same numbers. Frame rates are
exact (``sample_rate / hop``): transformers' own ``frame_rate`` rounds DAC's up (44.1 kHz / 512 =
86.13 Hz, which it reports as 87).
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .facts import CodecFacts  # noqa: F401  (re-exported)


class Family:
    """One codec family: its transformers classes, its facts and its encode / decode calls (mono, eval mode)."""

    model_type: ClassVar[str]
    title: ClassVar[str]
    config_class: ClassVar[str]  # names inside ``transformers`` (a fixed table, never taken from a recipe)
    model_class: ClassVar[str]

    def facts(self, cfg: Any) -> CodecFacts:
        raise NotImplementedError

    def unsupported(self, cfg: Any) -> str | None:
        """Why this checkpoint cannot be used as a mono codec of whole utterances (None if it can)."""
        return None if int(getattr(cfg, "audio_channels", 1)) == 1 else f"it is a {cfg.audio_channels}-channel model"

    def encode(self, model: nn.Module, wave: Tensor, levels: int) -> Tensor:
        """Wave [B, 1, F * hop] at the codec's rate -> int64 codes [B, levels, F]."""
        raise NotImplementedError

    def decode(self, model: nn.Module, codes: Tensor) -> Tensor:
        """int64 codes [B, Q, F] -> wave [B, F * hop] at the codec's rate."""
        raise NotImplementedError


class Encodec(Family):
    model_type, title, config_class, model_class = "encodec", "EnCodec", "EncodecConfig", "EncodecModel"

    def facts(self, cfg: Any) -> CodecFacts:
        return CodecFacts(self.model_type, int(cfg.sampling_rate), int(math.prod(cfg.upsampling_ratios)),
                          int(cfg.codebook_size), int(cfg.num_quantizers))

    def unsupported(self, cfg: Any) -> str | None:
        if cfg.normalize:  # the 48 kHz model: each chunk is scaled by a loudness its codes do not carry
            return "it normalises each chunk by a scale its codes do not carry (the 48 kHz model)"
        if cfg.chunk_length_s is not None:
            return f"it encodes overlapping {cfg.chunk_length_s} s chunks, not one code stream"
        return super().unsupported(cfg)

    def encode(self, model: nn.Module, wave: Tensor, levels: int) -> Tensor:
        # The quantizer picks its levels from a bitrate: ask for half a level more than ``levels`` so its
        # floor() lands on ``levels`` whatever the rounding of rate x bits.
        per_level = model.quantizer.frame_rate * math.log2(model.quantizer.codebook_size)
        codes = model.quantizer.encode(model.encoder(wave), bandwidth=(levels + 0.5) * per_level / 1000)  # [Q, B, F]
        return codes.transpose(0, 1)

    def decode(self, model: nn.Module, codes: Tensor) -> Tensor:
        return model.decoder(model.quantizer.decode(codes.transpose(0, 1)))[:, 0]


class Dac(Family):
    model_type, title, config_class, model_class = "dac", "DAC", "DacConfig", "DacModel"

    def facts(self, cfg: Any) -> CodecFacts:
        return CodecFacts(self.model_type, int(cfg.sampling_rate), int(math.prod(cfg.downsampling_ratios)),
                          int(cfg.codebook_size), int(cfg.n_codebooks))

    def encode(self, model: nn.Module, wave: Tensor, levels: int) -> Tensor:
        return model.encode(wave, n_quantizers=levels).audio_codes[:, :levels]  # eval mode: no quantizer dropout

    def decode(self, model: nn.Module, codes: Tensor) -> Tensor:
        return model.decode(audio_codes=codes).audio_values


class Mimi(Family):
    model_type, title, config_class, model_class = "mimi", "Mimi", "MimiConfig", "MimiModel"

    def facts(self, cfg: Any) -> CodecFacts:
        hop = cfg.sampling_rate / cfg.frame_rate  # 24 kHz / 12.5 Hz = 1920
        return CodecFacts(self.model_type, int(cfg.sampling_rate), int(round(hop)), int(cfg.codebook_size),
                          int(cfg.num_quantizers))

    def encode(self, model: nn.Module, wave: Tensor, levels: int) -> Tensor:
        # Mimi encodes at least its semantic level(s); level 0 is the one distilled from WavLM.
        n = max(levels, int(model.config.num_semantic_quantizers))
        return model.encode(wave, num_quantizers=n).audio_codes[:, :levels]

    def decode(self, model: nn.Module, codes: Tensor) -> Tensor:
        return model.decode(codes).audio_values[:, 0]


FAMILIES: dict[str, Family] = {f.model_type: f for f in (Encodec(), Dac(), Mimi())}


def family_of(model_type: str) -> Family | None:
    return FAMILIES.get(model_type)


def supported_titles() -> str:
    return ", ".join(f"{f.title} ({f.model_type!r})" for f in FAMILIES.values())


def check_frames(codes: Tensor, frames: int, family: Family) -> Tensor:
    """``codes`` cut to ``frames``; fewer frames than the input's length asks for is a bug worth a clear error."""
    if codes.shape[-1] < frames:
        raise RuntimeError(f"{family.title} returned {codes.shape[-1]} frames for audio of {frames} frames")
    return codes[..., :frames].to(torch.int64)
