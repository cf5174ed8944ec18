"""Configs of the pretrained-codec stages and the checks of a recipe's numbers against a checkpoint's.

A recipe may declare what it expects of the checkpoint (its rate, frame rate, codebook size), so the
LM stages can interpolate those numbers and `recipe validate` can check them without the weights.
Where the checkpoint's config.json is readable it is the authority and a declared number that
contradicts it is an error naming the key; where it is not (a path on another machine), validation
checks the declared numbers against the LMs and says what it could not check.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from soundstage.config import check_ranges
from soundstage.stage_spec import StageConfig

from .facts import CodecFacts


@dataclass
class CheckpointConfig(StageConfig):
    """Keys shared by the stages that use a local transformers codec checkpoint as is (never trained)."""

    path: str = "???"  # local directory of a transformers EnCodec / DAC / Mimi checkpoint (safetensors); never downloaded
    sample_rate: int = 16000  # rate of the audio this stage takes and gives (= data.sample_rate); resampled to the codec's
    device: str = "cpu"  # where the stage's own run loads and checks the codec; its users place it themselves
    # true: the exported model carries the checkpoint's weights and config.json, so run directories and bundles
    # need nothing else; false: it records `path`, which must then exist (unchanged) wherever the model is loaded
    copy_weights: bool = True
    # what the recipe expects of the checkpoint (None: not declared); checked against its config.json
    codec_sample_rate: Optional[int] = None  # the codec's own sample rate (EnCodec/Mimi 24000, DAC 16000/24000/44100)
    frame_rate: Optional[float] = None  # code frames per second (EnCodec-24k 75, DAC-16k 50, Mimi 12.5)
    # set by the stage from the checkpoint (leave unset in recipes)
    hf_config: str = ""  # the checkpoint's config.json, so an export rebuilds the codec without `path`
    weights_sha256: str = ""  # digest of its weight files; with copy_weights=false checked at every load

    def __post_init__(self) -> None:
        check_ranges(self, positive=("sample_rate", "codec_sample_rate", "frame_rate"))


@dataclass
class PretrainedCodecConfig(CheckpointConfig):
    """A published codec used as the acoustic tokenizer (codec role)."""

    num_quantizers: Optional[int] = None  # RVQ levels used, the first ones (None: from bandwidth, else all it has)
    bandwidth: Optional[float] = None  # kbps, instead of num_quantizers: levels = kbps * 1000 / (frame_rate * log2(codebook_size))
    codebook_size: Optional[int] = None  # expected codes per level (EnCodec/DAC 1024, Mimi 2048); checked

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranges(self, at_least_one=("num_quantizers", "codebook_size"), positive=("bandwidth",))


@dataclass
class MimiSemanticConfig(CheckpointConfig):
    """Mimi's first codebook (distilled from WavLM) as semantic tokens."""

    vocab_size: Optional[int] = None  # expected ids (Mimi: 2048, its codebook size); checked

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranges(self, at_least_one=("vocab_size",))


def declared_problems(config: CheckpointConfig, facts: CodecFacts, source: str) -> list[str]:
    """Each declared number that contradicts the checkpoint, naming the key."""
    pairs = [("codec_sample_rate", config.codec_sample_rate, facts.sample_rate),
             ("frame_rate", config.frame_rate, facts.frame_rate)]
    if isinstance(config, PretrainedCodecConfig):
        pairs.append(("codebook_size", config.codebook_size, facts.codebook_size))
    if isinstance(config, MimiSemanticConfig):
        pairs.append(("vocab_size", config.vocab_size, facts.codebook_size))
    return [f"config.{key}={ours} but {source} declares {theirs}"
            for key, ours, theirs in pairs if ours is not None and not math.isclose(float(ours), float(theirs))]


def codec_levels(config: PretrainedCodecConfig, facts: CodecFacts | None) -> tuple[int | None, list[str]]:
    """RVQ levels the codec stage uses (None when they cannot be known yet), and what is wrong with them."""
    frame_rate = facts.frame_rate if facts else config.frame_rate
    codebook = facts.codebook_size if facts else config.codebook_size
    levels, problems = config.num_quantizers, []
    if config.bandwidth is not None and frame_rate and codebook:
        exact = config.bandwidth * 1000 / (frame_rate * math.log2(codebook))
        if abs(exact - round(exact)) > 1e-6 or round(exact) < 1:
            problems.append(f"config.bandwidth={config.bandwidth} kbps is {exact:.3g} levels of "
                            f"{math.log2(codebook):g} bits at {frame_rate:g} Hz, not a whole number >= 1")
        elif levels is not None and levels != round(exact):
            problems.append(f"config.num_quantizers={levels} but config.bandwidth={config.bandwidth} kbps is {round(exact)} levels")
        else:
            levels = round(exact)
    if levels is None and facts is not None:
        levels = facts.num_quantizers
    if facts is not None and levels is not None and levels > facts.num_quantizers:
        problems.append(f"{levels} RVQ levels asked (config.num_quantizers / bandwidth) but the checkpoint has {facts.num_quantizers}")
    return levels, problems
