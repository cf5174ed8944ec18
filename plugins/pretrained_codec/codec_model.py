"""A transformers codec behind soundstage's codec interface, at the pipeline's sample rate.

Audio is resampled with soxr (as ``data/audio_io.py`` reads audio) to the codec's own rate before
encoding and back after decoding, so a 24 kHz codec serves a 16 kHz pipeline. Frame contract, as the
trained ``soundstream`` codec keeps it: ``T`` samples -> ``ceil(T * frame_rate / sample_rate)`` frames
(the resampled wave is zero-padded to whole codec frames), and ``F`` frames decode to
``round(F * sample_rate / frame_rate)`` samples.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from soundstage.data.audio_io import resample

from .families import CodecFacts, Family, check_frames


class PretrainedCodec(nn.Module):
    """``encode(wave [B, T], levels) -> [B, levels, F]`` and ``decode(codes [B, Q, F]) -> [B, T']`` at ``sample_rate``."""

    def __init__(self, model: nn.Module, family: Family, facts: CodecFacts, sample_rate: int) -> None:
        super().__init__()
        self.model, self.family, self.facts, self.sample_rate = model, family, facts, int(sample_rate)

    @property
    def frame_rate(self) -> float:
        return self.facts.frame_rate

    def num_frames(self, num_samples: int) -> int:
        """Code frames for ``num_samples`` samples at ``sample_rate`` (exact integer ceil)."""
        f = self.facts
        return -(-num_samples * f.sample_rate // (f.hop_length * self.sample_rate))

    def num_samples(self, frames: int) -> int:
        """Samples at ``sample_rate`` that ``frames`` code frames decode to."""
        f = self.facts
        return round(frames * f.hop_length * self.sample_rate / f.sample_rate)

    def encode(self, wave: Tensor, levels: int) -> Tensor:
        """Waveform [B, T] at ``sample_rate`` -> int64 codes [B, levels, ceil(T * frame_rate / sample_rate)]."""
        frames = self.num_frames(wave.shape[-1])
        if frames == 0:
            return torch.zeros(wave.shape[0], levels, 0, dtype=torch.int64, device=wave.device)
        native = _resample(wave, self.sample_rate, self.facts.sample_rate, frames * self.facts.hop_length)
        codes = self.family.encode(self.model, native.to(self._device)[:, None], levels)  # [B, levels, >= frames]
        return check_frames(codes, frames, self.family).to(wave.device)

    def decode(self, codes: Tensor) -> Tensor:
        """int64 codes [B, Q, F] -> waveform [B, round(F * sample_rate / frame_rate)] at ``sample_rate``."""
        frames = codes.shape[-1]
        if frames == 0:
            return torch.zeros(codes.shape[0], 0, device=codes.device)
        native = self.family.decode(self.model, codes.to(self._device, torch.int64))[..., : frames * self.facts.hop_length]
        return _resample(native.float(), self.facts.sample_rate, self.sample_rate, self.num_samples(frames)).to(codes.device)

    @property
    def _device(self) -> torch.device:
        return next(self.model.parameters()).device


def _resample(wave: Tensor, sr_in: int, sr_out: int, length: int) -> Tensor:
    """[B, T] from ``sr_in`` to ``sr_out`` (soxr, on the CPU), zero-padded or cut to ``length`` samples."""
    wave = wave.detach().float()
    if sr_in != sr_out:
        # soxr filters the columns of a [T, C] array together: the batch travels as channels
        out = resample(np.ascontiguousarray(wave.cpu().numpy().T), sr_in, sr_out)
        wave = torch.from_numpy(np.ascontiguousarray(out.reshape(out.shape[0], -1).T)).to(wave.device)
    if wave.shape[-1] < length:
        return torch.nn.functional.pad(wave, (0, length - wave.shape[-1]))
    return wave[..., :length]
