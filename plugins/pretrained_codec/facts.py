"""What a codec checkpoint declares about its tokens (torch-free)."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class CodecFacts:
    """What a checkpoint declares about its tokens."""

    model_type: str
    sample_rate: int  # the codec's own audio rate
    hop_length: int  # samples (at ``sample_rate``) per code frame
    codebook_size: int
    num_quantizers: int  # RVQ levels the checkpoint has

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def bandwidth_levels(self, kbps: float) -> float:
        """RVQ levels a bitrate of ``kbps`` buys (not necessarily whole)."""
        return kbps * 1000 / (self.frame_rate * math.log2(self.codebook_size))
