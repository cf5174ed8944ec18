"""Role base classes for stages that turn audio into tokens: a semantic tokenizer and a codec
(their declarations, torch-free, are in ``role_specs.py``).

A stage of either role declares its stream once, in ``token_streams(config, upstream)`` (the token
contract, ``soundstage.token_contract``); the numbers every consumer reads (``sample_rate``,
``frame_rate``, ``hop_length``, ``vocab_size`` or ``codebook_size`` / ``num_quantizers``) are
derived from it here, so they cannot drift from what ``recipe validate`` checked. A subclass
implements ``encode`` (and a codec ``decode``) and ``num_frames``; it overrides a property only when
the number comes from a loaded model rather than from its config (a pretrained checkpoint).

The acoustic generators (the coarse + fine LMs, SoundStorm) share ``LMStage``
(``plugins/lm/lm_stage.py``), whose ``expected_streams`` declares what they read.
"""
from __future__ import annotations

from torch import Tensor

from soundstage.stage import Stage
from soundstage.token_contract import TokenStream

from .role_specs import CodecSpec, SemanticTokenizerSpec, TokenizerSpec


class TokenizerStage(TokenizerSpec, Stage):
    """A stage that reads audio and makes one token stream, ``token_kind`` (declared in its spec)."""

    @property
    def token_stream(self) -> TokenStream:
        """The stream this stage declares (its config's numbers)."""
        return type(self).token_streams(self.config, {})[self.token_kind]

    @property
    def sample_rate(self) -> int:
        """Rate of the audio ``encode`` takes."""
        return int(self.token_stream.sample_rate)  # type: ignore[arg-type]

    @property
    def frame_rate(self) -> float:
        """Token frames per second."""
        return float(self.token_stream.frame_rate)  # type: ignore[arg-type]

    @property
    def hop_length(self) -> int | float:
        """Samples per token frame (an int when whole)."""
        hop = self.sample_rate / self.frame_rate
        return int(round(hop)) if abs(hop - round(hop)) < 1e-9 else hop

    def num_frames(self, num_samples: int) -> int:
        """Token frames ``encode`` makes from ``num_samples`` samples."""
        raise NotImplementedError

    def encode(self, wave: Tensor) -> Tensor:
        """Waveform [B, T] at ``sample_rate`` -> int64 token ids."""
        raise NotImplementedError


class SemanticTokenizerStage(SemanticTokenizerSpec, TokenizerStage):
    """Audio -> semantic ids [B, T'] in ``0..vocab_size-1``."""

    @property
    def vocab_size(self) -> int:
        return int(self.token_stream.vocab_size)  # type: ignore[arg-type]


class CodecStage(CodecSpec, TokenizerStage):
    """Audio <-> acoustic codes [B, num_quantizers, T'] in ``0..codebook_size-1``."""

    @property
    def codebook_size(self) -> int:
        return int(self.token_stream.vocab_size)  # type: ignore[arg-type]

    @property
    def num_quantizers(self) -> int:
        return int(self.token_stream.levels)  # type: ignore[arg-type]

    def decode(self, codes: Tensor, length: int | None = None) -> Tensor:
        """Codes [B, Q, T'] (any Q up to ``num_quantizers``) -> waveform [B, T' * hop], cut to ``length``."""
        raise NotImplementedError
