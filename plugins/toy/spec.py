"""``toy_regressor``'s declarations: its config and streams (torch-free; ``stage.py`` trains it)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from soundstage.config import check_ranges
from soundstage.registry import register_stage
from soundstage.stage_spec import StageConfig, StageSpec

if TYPE_CHECKING:
    from .stage import ToyRegressorStage


@dataclass
class ToyRegressorConfig(StageConfig):
    """Fit y = sin(frequency * x) on [-pi, pi] with a small MLP."""

    hidden: int = 32
    frequency: float = 1.0
    num_samples: int = 512
    batch_size: int = 32
    lr: float = 3e-3
    init_from_upstream: bool = False  # start from the weights of a needed toy_regressor stage
    step_delay_s: float = 0.0  # sleep per step (lets tests interrupt a run mid-stage)

    def __post_init__(self) -> None:
        check_ranges(self, at_least_one=("hidden", "num_samples", "batch_size"), positive=("lr",),
                     non_negative=("step_delay_s",))


@register_stage("toy_regressor")
class ToyRegressorSpec(StageSpec):
    """Regresses a sine; produces the ``toy`` stream (its own weights) for a later toy stage."""

    config_class = ToyRegressorConfig
    optional_consumes = ("toy",)
    consumes = ("toy",)
    produces = ("toy",)
    monitor = "val/loss"

    @classmethod
    def implementation(cls) -> type["ToyRegressorStage"]:
        from .stage import ToyRegressorStage

        return ToyRegressorStage
