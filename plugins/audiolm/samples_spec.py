"""``audiolm_samples``'s declarations: its options and the models it needs (torch-free; ``samples_stage.py`` runs it)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from soundstage.registry import register_stage
from soundstage.stage_spec import StageConfig, StageSpec

if TYPE_CHECKING:
    from .samples_stage import AudioLMSamplesStage

ROLE_STREAMS = {
    "semantic_tokenizer": "semantic",
    "codec": "acoustic",
    "semantic_lm": "semantic_lm",
    "coarse_lm": "coarse_lm",
    "fine_lm": "fine_lm",
    "soundstorm": "soundstorm",
}
ACOUSTIC_STREAMS = ("coarse_lm", "fine_lm", "soundstorm")  # needs: coarse_lm + fine_lm, or soundstorm


@dataclass
class StageSampling:
    """Sampling overrides for one LM (unset: the LM's own config)."""

    temperature: Optional[float] = None
    top_k: Optional[int] = None
    top_p: Optional[float] = None

    def as_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass
class SamplesConfig(StageConfig):
    """How many samples of which kind to write."""

    num_prompts: int = 2  # held-out utterances to continue
    prompt_seconds: float = 2.0
    continue_seconds: float = 3.0
    num_unconditional: int = 1
    unconditional_seconds: float = 3.0
    seed: int = 0
    device: str = "cpu"
    semantic: StageSampling = field(default_factory=StageSampling)
    coarse: StageSampling = field(default_factory=StageSampling)
    fine: StageSampling = field(default_factory=StageSampling)
    soundstorm: StageSampling = field(default_factory=StageSampling)


@register_stage("audiolm_samples")
class AudioLMSamplesSpec(StageSpec):
    """Writes prompt/continuation and unconditional WAVs (plus samples.json) into its stage folder."""

    config_class = SamplesConfig
    consumes = ("audio", *ROLE_STREAMS.values())
    optional_consumes = ACOUSTIC_STREAMS
    trainable = False

    @classmethod
    def implementation(cls) -> type["AudioLMSamplesStage"]:
        from .samples_stage import AudioLMSamplesStage

        return AudioLMSamplesStage

    @classmethod
    def check_upstream(cls, config: StageConfig, upstream: dict[str, tuple[type[StageSpec], StageConfig]]) -> list[str]:
        made = {s for spec, _ in upstream.values() for s in spec.produces}
        if not ({"coarse_lm", "fine_lm"} <= made or "soundstorm" in made):
            return ["needs an acoustic generator: coarse_lm + fine_lm, or soundstorm"]
        return []
