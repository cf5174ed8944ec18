"""The pretrained-codec stages' declarations: their configs, the checkpoint's numbers against the recipe's,
their token streams (torch-free until a checkpoint is actually on this machine: reading its config.json
goes through transformers). ``stage.py`` and ``semantic_stage.py`` load and run them."""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from soundstage.errors import SoundstageError
from soundstage.plugins.role_specs import CodecSpec, SemanticTokenizerSpec
from soundstage.registry import register_stage
from soundstage.stage_spec import StageConfig, StageSpec
from soundstage.token_contract import TokenStream

from .config import CheckpointConfig, MimiSemanticConfig, PretrainedCodecConfig, codec_levels, declared_problems
from .facts import CodecFacts

if TYPE_CHECKING:
    from .families import Family
    from .semantic_stage import MimiSemanticStage
    from .stage import PretrainedCodecStage

log = logging.getLogger("soundstage.plugins.pretrained_codec")


class CheckpointSpec(StageSpec):
    """A stage that uses a local transformers codec checkpoint as is: a job whose model is exported."""

    consumes: ClassVar[tuple[str, ...]] = ("audio",)
    trainable = False
    exports_model = True
    required_family: ClassVar[str | None] = None  # model_type a subclass needs (e.g. "mimi")

    @classmethod
    def contract_problems(cls, config: StageConfig, facts: CodecFacts | None) -> list[str]:
        """What else the subclass requires of the checkpoint (``facts`` None: unknown at validation)."""
        return []

    @classmethod
    def _check_family(cls, family: "Family", where: str) -> None:
        if cls.required_family and family.model_type != cls.required_family:
            raise SoundstageError(f"{where}: {cls.stage_name} needs a {cls.required_family!r} checkpoint, "
                                  f"got {family.title} ({family.model_type!r})")

    @classmethod
    def readable_facts(cls, config: CheckpointConfig, where: str = "config.path") -> CodecFacts | None:
        """The checkpoint's facts from its saved config.json or the one at ``path``; None when neither is here.

        A path that exists must be a usable checkpoint (errors name ``where``); reads no weights.
        """
        if not config.hf_config and not Path(config.path).expanduser().exists():
            return None
        from .checkpoint import checked_family, codec_facts  # transformers' config classes (torch)

        if config.hf_config:
            raw = json.loads(config.hf_config)
            family = checked_family(raw, where, "the saved config.json")
        else:
            directory = Path(config.path).expanduser()
            stamp = (directory / "config.json").stat().st_mtime_ns if (directory / "config.json").is_file() else 0
            family, raw = _inspect_cached(str(directory), stamp, where)
        cls._check_family(family, where)
        return codec_facts(family, raw, where)

    @classmethod
    def facts_or_none(cls, config: CheckpointConfig) -> CodecFacts | None:
        """``readable_facts``, or None when they cannot be read (``check_upstream`` reports why, naming the key)."""
        try:
            return cls.readable_facts(config)
        except SoundstageError:
            return None

    @classmethod
    def check_upstream(cls, config: CheckpointConfig, upstream: dict[str, tuple[type[StageSpec], Any]]) -> list[str]:
        """At `recipe validate`: the declared numbers against the checkpoint's config.json when it is here."""
        try:
            facts = cls.readable_facts(config)
        except SoundstageError as exc:
            return [str(exc)]
        if facts is None:
            log.warning("%s: config.path %s is not on this machine: checked the recipe's numbers against the other stages only; the "
                        "checkpoint itself (model type, weights, rates, sizes) is checked when the stage runs",
                        cls.stage_name, config.path)
            return cls.contract_problems(config, None)
        return declared_problems(config, facts, f"{config.path} (config.json)") + cls.contract_problems(config, facts)


@register_stage("pretrained_codec")
class PretrainedCodecSpec(CheckpointSpec, CodecSpec):
    """A local EnCodec / DAC / Mimi checkpoint as the codec: audio -> acoustic tokens [B, Q, T'] (not trained)."""

    config_class = PretrainedCodecConfig

    @classmethod
    def implementation(cls) -> type["PretrainedCodecStage"]:
        from .stage import PretrainedCodecStage

        return PretrainedCodecStage

    @classmethod
    def contract_problems(cls, config: PretrainedCodecConfig, facts: CodecFacts | None) -> list[str]:  # type: ignore[override]
        return codec_levels(config, facts)[1]

    @classmethod
    def token_streams(cls, config: PretrainedCodecConfig, upstream: dict[str, TokenStream]) -> dict[str, TokenStream]:
        """From the checkpoint's config.json when it is readable here, else from the recipe's declared numbers."""
        facts = cls.facts_or_none(config)
        codebook = facts.codebook_size if facts else config.codebook_size
        rate = facts.frame_rate if facts else config.frame_rate
        levels, _ = codec_levels(config, facts)
        return {"acoustic": TokenStream("acoustic", codebook, rate, levels, config.sample_rate)}


@register_stage("mimi_semantic")
class MimiSemanticSpec(CheckpointSpec, SemanticTokenizerSpec):
    """Mimi's first (WavLM-distilled) codebook as semantic tokens: ``encode(wave [B, T]) -> int64 ids [B, T // hop]``."""

    config_class = MimiSemanticConfig
    required_family = "mimi"

    @classmethod
    def implementation(cls) -> type["MimiSemanticStage"]:
        from .semantic_stage import MimiSemanticStage

        return MimiSemanticStage

    @classmethod
    def token_streams(cls, config: MimiSemanticConfig, upstream: dict[str, TokenStream]) -> dict[str, TokenStream]:
        """From the checkpoint's config.json when it is readable here, else from the recipe's declared numbers."""
        facts = cls.facts_or_none(config)
        vocab = facts.codebook_size if facts else config.vocab_size
        rate = facts.frame_rate if facts else config.frame_rate
        return {"semantic": TokenStream("semantic", vocab, rate, 1, config.sample_rate)}


@functools.lru_cache(maxsize=16)
def _inspect_cached(directory: str, config_mtime: int, where: str) -> tuple["Family", dict[str, Any]]:
    from .checkpoint import inspect_checkpoint

    source = inspect_checkpoint(directory, where)  # validate asks once per LM stage: read config.json once
    return source.family, source.raw_config
