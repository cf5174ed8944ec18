"""``soundstorm``'s declarations: presets, what it reads, its window and memory floor (torch-free;
``stage.py`` trains it)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from soundstage.plugins.lm.spec import LMSpec, all_levels_expectation, semantic_expectation
from soundstage.registry import register_stage
from soundstage.token_contract import TokenExpectation

from .configs import SoundStormConfig

if TYPE_CHECKING:
    from .stage import SoundStormStage


@register_stage("soundstorm")
class SoundStormSpec(LMSpec):
    """Bidirectional Conformer over codec frames, conditioned on semantic ids, decoded MaskGIT-style."""

    config_class = SoundStormConfig
    produces = ("soundstorm",)
    streams = ("semantic", "acoustic")

    @classmethod
    def implementation(cls) -> type["SoundStormStage"]:
        from .stage import SoundStormStage

        return SoundStormStage

    @classmethod
    def config_presets(cls) -> dict[str, dict[str, Any]]:
        from .presets import PRESETS

        return PRESETS

    @classmethod
    def expected_streams(cls, c: SoundStormConfig) -> list[TokenExpectation]:
        return [semantic_expectation(c), all_levels_expectation(c)]

    @classmethod
    def memory_floor(cls, config: SoundStormConfig) -> list[tuple[str, float, str]]:
        # Each block keeps about 4 residual-width activations (FF, attention, conv, FF) per frame.
        frames = cls.window_tokens(config)["acoustic"]
        m = config.model
        what = f"{config.batch_size} x {frames} frames x {m.d_model} dims x {m.n_layer} blocks x 4 of float32 activations"
        return [("batch_size", 4.0 * 4 * config.batch_size * frames * m.d_model * m.n_layer, what)]
