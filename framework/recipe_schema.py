"""Typed schema of a recipe's top-level sections (``data``, ``trainer``, ``stages.<name>``)."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Optional

from .config import RangeError, check_ranges
from .trainer import TrainerConfig

SPEECH_ENGINES = ("espeak", "kokoro")  # the readers of the embedded speech corpus (soundstage.data.speech_corpus)


@dataclass
class DataConfig:
    """The dataset every stage of a recipe reads.

    With ``train_shards`` unset the embedded ``corpus`` (speech or music) is synthesised once
    into ``cache_dir`` and its held-out voices/pieces become the validation set.
    """

    sample_rate: int = 16000
    corpus: str = "speech"  # embedded corpus used when no shards are given: speech | music
    engine: str = "espeak"  # what reads the speech corpus: espeak (formant) | kokoro (natural voices; the natural extra)
    hours: float = 0.05  # size of the embedded corpus to synthesise
    val_fraction: float = 0.1  # share of the embedded corpus (by voice / piece) held out
    corpus_seed: int = 0
    cache_dir: str = "~/.cache/soundstage/corpora"
    train_shards: Optional[str] = None  # brace pattern, list file, directory, or pipe:/http/s3 URL
    val_shards: Optional[str] = None
    num_workers: int = 0
    prefetch_factor: int = 2
    pin_memory: bool = False
    shuffle_buffer: int = 256
    remote_timeout_s: float = 30.0  # http(s), s3:// and gs:// shards: connect/read timeout; unreachable hosts fail at once
    remote_retries: int = 3  # http(s) shards: retries of transient HTTP errors (408, 429, 5xx), with backoff (s3/gs: the client's)

    def __post_init__(self) -> None:
        check_ranges(self, positive=("sample_rate", "hours", "remote_timeout_s"), at_least_one=("prefetch_factor",),
                     non_negative=("num_workers", "shuffle_buffer", "remote_retries"))
        if not 0 <= self.val_fraction < 1:
            raise RangeError("val_fraction", f"must be within [0, 1), got {self.val_fraction}", type(self))
        if self.engine not in SPEECH_ENGINES:
            close = difflib.get_close_matches(str(self.engine), SPEECH_ENGINES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise RangeError("engine", f"unknown speech engine {self.engine!r}: one of {', '.join(SPEECH_ENGINES)}{hint}",
                             type(self))


@dataclass
class StageEntry:
    """One entry under ``stages:``: which plugin, its config, and how it is wired."""

    plugin: str = "???"
    needs: list[str] = field(default_factory=list)
    config: Any = field(default_factory=dict)  # validated against the plugin's config_class
    trainer: Any = field(default_factory=dict)  # overrides of the recipe-level trainer section
    checkpoint: Optional[str] = None  # use this exported model instead of training


@dataclass
class RecipeSchema:
    """A whole recipe after includes and overrides are merged."""

    name: str = "???"
    description: str = ""
    seed: int = 0
    run_root: str = "runs"
    shared: Any = field(default_factory=dict)  # numbers several stages use, referenced as ${shared.key}
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    stages: dict[str, StageEntry] = field(default_factory=dict)
