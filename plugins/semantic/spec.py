"""The semantic stages' declarations (torch-free; ``kmeans_stage.py`` and ``hubert_stage.py`` run them)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from soundstage.plugins.role_specs import SemanticTokenizerSpec
from soundstage.registry import register_stage
from soundstage.stage_spec import StageSpec
from soundstage.token_contract import TokenStream

from .configs import HubertStageConfig, KMeansTokenizerConfig, audio_batch_floor

if TYPE_CHECKING:
    from .hubert_stage import HubertStage
    from .kmeans_stage import KMeansTokenizerStage


@register_stage("kmeans_tokenizer")
class KMeansTokenizerSpec(SemanticTokenizerSpec):
    """Semantic tokenizer: k-means on MFCC, log-mel or a self-supervised model's layer features."""

    config_class = KMeansTokenizerConfig

    @classmethod
    def implementation(cls) -> type["KMeansTokenizerStage"]:
        from .kmeans_stage import KMeansTokenizerStage

        return KMeansTokenizerStage

    @classmethod
    def token_streams(cls, config: KMeansTokenizerConfig, upstream: dict[str, TokenStream]) -> dict[str, TokenStream]:
        return {"semantic": TokenStream("semantic", config.vocab_size, config.frame_rate, 1, config.sample_rate)}

    @classmethod
    def memory_floor(cls, config: KMeansTokenizerConfig) -> list[tuple[str, float, str]]:
        return audio_batch_floor(config, config.sample_rate)


@register_stage("hubert")
class HubertSpec(StageSpec):
    """A HuBERT trained on an upstream tokenizer's targets; ``features(wave, layer)`` for the next k-means."""

    config_class = HubertStageConfig
    consumes = ("audio", "semantic")
    produces = ("ssl_features",)

    @classmethod
    def implementation(cls) -> type["HubertStage"]:
        from .hubert_stage import HubertStage

        return HubertStage

    @classmethod
    def memory_floor(cls, config: HubertStageConfig) -> list[tuple[str, float, str]]:
        return audio_batch_floor(config, config.model.sample_rate)
