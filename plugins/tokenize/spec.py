"""``tokenize``'s declarations: its options and the streams it re-emits (torch-free; ``stage.py`` runs it)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Optional

from soundstage.config import RangeError, check_ranges
from soundstage.errors import SoundstageError
from soundstage.registry import register_stage
from soundstage.stage_spec import StageConfig, StageSpec
from soundstage.token_contract import TokenStream

if TYPE_CHECKING:
    from .stage import TokenizeStage

STREAMS = ("semantic", "acoustic")


@dataclass
class TokenizeConfig(StageConfig):
    """Options of the tokenize job."""

    batch_size: int = 8
    num_quantizers: Optional[int] = None  # acoustic levels to keep (default: all of the codec's)
    max_seconds: Optional[float] = None  # cut longer utterances to bound memory (None: whole)
    shard_mb: int = 128  # target size of a token shard
    num_workers: Optional[int] = None  # loader workers (default: data.num_workers)
    output: Optional[str] = None  # token shards go to <output>/<split>/ (a folder or s3:// / gs:// prefix); default: the stage's tokens/
    # Also tokenize every training utterance played at these speeds (Kaldi's speed perturbation, e.g.
    # [0.9, 1.1]): tempo, pitch and formants move together, so each factor adds a set of new voices
    # for the LMs (the held-out voices are what they must generalize to). Validation is never perturbed.
    speed_perturb: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_ranges(self, at_least_one=("batch_size", "num_quantizers", "shard_mb"), positive=("max_seconds",),
                     non_negative=("num_workers",))
        for speed in self.speed_perturb:
            if not 0.5 <= speed <= 2.0 or speed == 1.0:
                raise RangeError("speed_perturb", f"{speed} is not a speed factor in [0.5, 2] other than 1 "
                                 "(the original is always kept)", type(self))


@register_stage("tokenize")
class TokenizeSpec(StageSpec):
    """Encode the recipe's audio shards into token shards with the upstream semantic/acoustic models."""

    config_class = TokenizeConfig
    consumes = ("audio", "acoustic", "semantic")
    produces = ("tokens",)
    trainable = False

    @classmethod
    def implementation(cls) -> type["TokenizeStage"]:
        from .stage import TokenizeStage

        return TokenizeStage

    @classmethod
    def token_streams(cls, config: TokenizeConfig, upstream: dict[str, TokenStream]) -> dict[str, TokenStream]:
        """The upstream streams, re-emitted; the acoustic one cut to ``num_quantizers`` levels if set."""
        streams = {k: v for k, v in upstream.items() if k in STREAMS}
        acoustic = streams.get("acoustic")
        if acoustic is not None and config.num_quantizers is not None:
            if acoustic.levels is not None and config.num_quantizers > acoustic.levels:
                raise SoundstageError(f"config num_quantizers={config.num_quantizers} exceeds the codec's "
                                      f"{acoustic.levels} RVQ levels")
            streams["acoustic"] = replace(acoustic, levels=config.num_quantizers)
        return streams
