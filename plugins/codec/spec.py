"""``soundstream``'s declarations: config, presets, token stream, memory floor (torch-free; ``stage.py`` trains it)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from soundstage.plugins.role_specs import CodecSpec
from soundstage.registry import register_stage
from soundstage.token_contract import TokenExpectation, TokenStream

from .config import SoundStreamConfig

if TYPE_CHECKING:
    from .stage import SoundStreamStage


@register_stage("soundstream")
class SoundStreamSpec(CodecSpec):
    """SoundStream codec stage: consumes audio, produces acoustic tokens [B, Q, T'] at ``frame_rate`` Hz."""

    config_class = SoundStreamConfig
    consumes = ("audio", "semantic")
    optional_consumes = ("semantic",)  # only with semantic distillation (``semantic_weight`` > 0)

    @classmethod
    def implementation(cls) -> type["SoundStreamStage"]:
        from .stage import SoundStreamStage

        return SoundStreamStage

    @classmethod
    def config_presets(cls) -> dict[str, dict[str, Any]]:
        from .presets import PRESETS  # presets.py builds configs: imported on use

        return PRESETS

    @classmethod
    def token_streams(cls, config: SoundStreamConfig, upstream: dict[str, TokenStream]) -> dict[str, TokenStream]:
        hop = math.prod(config.strides)
        return {"acoustic": TokenStream("acoustic", config.codebook_size, config.sample_rate / hop,
                                        config.num_quantizers, config.sample_rate)}

    @classmethod
    def check_upstream(cls, config: SoundStreamConfig, upstream: dict) -> list[str]:
        if config.semantic_weight > 0 and not any("semantic" in spec.produces for spec, _ in upstream.values()):
            return ["config.semantic_weight > 0 distils the semantic ids into the first RVQ level: "
                    "add the semantic tokenizer to the codec's needs"]
        return []

    @classmethod
    def expected_streams(cls, config: SoundStreamConfig) -> list[TokenExpectation]:
        if config.semantic_weight <= 0:
            return []
        return [TokenExpectation("semantic", config.semantic_vocab_size, keys={"vocab_size": "semantic_vocab_size"})]

    @classmethod
    def memory_floor(cls, config: SoundStreamConfig) -> list[tuple[str, float, str]]:
        samples = config.batch_size * config.segment_seconds * config.sample_rate
        what = f"{config.batch_size} x {config.segment_seconds} s at {config.sample_rate} Hz: waveform + first conv layer"
        return [("batch_size", samples * 4 * (1 + config.channels), what)]
