"""The LM stages' declarations: what each reads from the token shards and how long its window is
(torch-free; ``lm_stage.py`` and ``stages.py`` train them)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

from soundstage.data.token_windows import window_lengths
from soundstage.registry import register_stage
from soundstage.stage_spec import StageSpec
from soundstage.token_contract import TokenExpectation

from .configs import ACOUSTIC_KEYS, SEMANTIC_KEYS, CoarseLMConfig, FineLMConfig, LMConfig, SemanticLMConfig

if TYPE_CHECKING:
    from .stages import CoarseLMStage, FineLMStage, SemanticLMStage


def semantic_expectation(c: LMConfig) -> TokenExpectation:
    """What a stage that reads semantic ids needs (its ``semantic_vocab_size`` and ``semantic_rate``)."""
    return TokenExpectation("semantic", c.semantic_vocab_size, c.semantic_rate, keys=SEMANTIC_KEYS)  # type: ignore[attr-defined]


def all_levels_expectation(c: LMConfig) -> TokenExpectation:
    """What a stage that reads every RVQ level needs (``codebook_size``, ``acoustic_rate``, ``num_quantizers``)."""
    return TokenExpectation("acoustic", c.codebook_size, c.acoustic_rate, levels=c.num_quantizers,  # type: ignore[attr-defined]
                            keys=ACOUSTIC_KEYS)


class LMSpec(StageSpec):
    """A stage that trains on token shards: the streams it reads and the tokens of one training window."""

    consumes: ClassVar[tuple[str, ...]] = ("tokens",)
    streams: ClassVar[tuple[str, ...]] = ()  # token streams this stage reads from the shards

    @classmethod
    def window_tokens(cls, config: LMConfig) -> dict[str, int]:
        """Tokens of each stream in one training window of ``config.window_seconds``: what the token
        datamodule crops and what the sequence length (``max_seq_len``) is made of."""
        return window_lengths({e.kind: e.frame_rate for e in cls.expected_streams(config)}, config.window_seconds)

    @classmethod
    def memory_floor(cls, config: LMConfig) -> list[tuple[str, float, str]]:
        # Each layer's residual stream is kept for the backward pass; a window holds at least one
        # stream's tokens (the fastest one), and never more than the model's block_size of them.
        m = config.model
        tokens = max(1, min(getattr(m, "block_size", math.inf), max(cls.window_tokens(config).values())))
        what = f"{config.batch_size} x {tokens} tokens x {m.d_model} dims x {m.n_layer} layers of float32 activations"
        return [("batch_size", 4.0 * config.batch_size * tokens * m.d_model * m.n_layer, what)]


@register_stage("semantic_lm")
class SemanticLMSpec(LMSpec):
    """Decoder-only LM over semantic ids (AudioLM stage 1)."""

    config_class = SemanticLMConfig
    produces = ("semantic_lm",)
    streams = ("semantic",)

    @classmethod
    def implementation(cls) -> type["SemanticLMStage"]:
        from .stages import SemanticLMStage

        return SemanticLMStage

    @classmethod
    def expected_streams(cls, config: SemanticLMConfig) -> list[TokenExpectation]:
        return [semantic_expectation(config)]


@register_stage("coarse_lm")
class CoarseLMSpec(LMSpec):
    """Semantic ids -> coarse RVQ codes, flattened frame by frame (AudioLM stage 2)."""

    config_class = CoarseLMConfig
    produces = ("coarse_lm",)
    streams = ("semantic", "acoustic")

    @classmethod
    def implementation(cls) -> type["CoarseLMStage"]:
        from .stages import CoarseLMStage

        return CoarseLMStage

    @classmethod
    def expected_streams(cls, c: CoarseLMConfig) -> list[TokenExpectation]:
        return [semantic_expectation(c),
                TokenExpectation("acoustic", c.codebook_size, c.acoustic_rate, min_levels=c.num_coarse_quantizers,
                                 keys={**ACOUSTIC_KEYS, "levels": "num_coarse_quantizers"})]


@register_stage("fine_lm")
class FineLMSpec(LMSpec):
    """Coarse RVQ levels -> all levels, chunk by chunk (AudioLM stage 3)."""

    config_class = FineLMConfig
    produces = ("fine_lm",)
    streams = ("acoustic",)

    @classmethod
    def implementation(cls) -> type["FineLMStage"]:
        from .stages import FineLMStage

        return FineLMStage

    @classmethod
    def expected_streams(cls, c: FineLMConfig) -> list[TokenExpectation]:
        return [all_levels_expectation(c)]
