"""The embedded default dataset: synthesise a corpus once into a cache directory, return its shards.

The cache folder is keyed by every parameter that changes the audio, so a recipe that asks for
another size or rate gets its own corpus. Generation writes into a temp folder that is renamed
into place when complete, under a file lock, so concurrent ranks or an interrupted run never see
(or leave) a half-written corpus.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soundstage.errors import SoundstageError

from .shard_writer import INDEX_FILE

if TYPE_CHECKING:
    from soundstage.recipe_schema import DataConfig

CORPUS_VERSION = 1  # bump when synthesis changes, so old caches are not reused
CORPORA = ("speech", "music")


def corpus_params(data_cfg: "DataConfig") -> dict[str, Any]:
    """The parameters that define a corpus (and its cache key)."""
    if data_cfg.corpus not in CORPORA:
        raise ValueError(f"data.corpus must be one of {CORPORA}, got {data_cfg.corpus!r}")
    check_corpus_size(data_cfg.hours, data_cfg.sample_rate, data_cfg.val_fraction)
    params = {
        "corpus": data_cfg.corpus,
        "hours": float(data_cfg.hours),
        "sample_rate": int(data_cfg.sample_rate),
        "val_fraction": float(data_cfg.val_fraction),
        "seed": int(data_cfg.corpus_seed),
        "version": CORPUS_VERSION,
    }
    engine = getattr(data_cfg, "engine", "espeak")
    if data_cfg.corpus == "speech" and engine != "espeak":  # espeak corpora keep the keys they always had
        params["engine"] = engine
    return params


def corpus_dir(data_cfg: "DataConfig") -> Path:
    """Where the corpus for ``data_cfg`` lives (whether or not it exists yet)."""
    params = corpus_params(data_cfg)
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    kind = "-".join(filter(None, (params["corpus"], params.get("engine"))))  # speech, speech-kokoro, music
    name = f"{kind}-{params['sample_rate']}hz-{params['hours']:g}h-seed{params['seed']}-{digest}"
    return Path(os.path.expanduser(data_cfg.cache_dir)) / name


def check_corpus_size(hours: float, sample_rate: int, val_fraction: float) -> None:
    """Raise ``ValueError`` naming the key when a corpus cannot be made from these numbers."""
    if not (math.isfinite(hours) and hours > 0):
        raise ValueError(f"data.hours must be finite and > 0, got {hours}")
    if not sample_rate > 0:
        raise ValueError(f"data.sample_rate must be > 0, got {sample_rate}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"data.val_fraction must be within [0, 1), got {val_fraction}")


def generate_corpus(out_dir: str | Path, params: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """Synthesise the corpus described by ``params`` into ``out_dir`` (train/ and val/)."""
    common = dict(hours=params["hours"], seed=params["seed"], sample_rate=params["sample_rate"],
                  val_fraction=params["val_fraction"], progress=progress)
    if params["corpus"] == "speech":
        from .speech_corpus import synthesize_speech

        engine = params.get("engine", "espeak")
        # Kokoro reads about one audio second per CPU second: one process per core (the corpus is the same).
        workers = (os.cpu_count() or 1) if engine == "kokoro" and (os.cpu_count() or 1) > 1 else 0
        return synthesize_speech(out_dir, **common, engine=engine, num_workers=workers)
    from .music_corpus import synthesize_music

    return synthesize_music(out_dir, **common)


def _patterns(root: Path) -> tuple[str, str]:
    pats = []
    for split in ("train", "val"):
        index = json.loads((root / split / INDEX_FILE).read_text())
        pats.append(str(root / split / index["pattern"]))
    return pats[0], pats[1]


def _check_complete(root: Path, params: dict[str, Any]) -> None:
    for split in ("train", "val"):
        index_path = root / split / INDEX_FILE
        samples = json.loads(index_path.read_text()).get("num_samples", 0) if index_path.is_file() else 0
        if not samples:
            raise SoundstageError(
                f"the embedded {params['corpus']} corpus of data.hours={params['hours']:g} has no {split} samples; "
                f"raise data.hours (or data.val_fraction for the val split)"
            )


def prepare_corpus(data_cfg: "DataConfig", progress: bool = True) -> tuple[str, str]:
    """Generate the embedded corpus once (cached) and return its (train, val) shard patterns."""
    from soundstage.checkpoint import build_dir_once

    final = corpus_dir(data_cfg)
    params = corpus_params(data_cfg)

    def build(tmp: Path) -> None:
        generate_corpus(tmp, params, progress=progress)
        _check_complete(tmp, params)  # before it gets its final name: no half-built cache entry
        (tmp / "corpus.json").write_text(json.dumps(params, indent=2) + "\n")

    build_dir_once(final, "corpus.json", build)  # other ranks wait on its lock, then find the finished corpus
    return _patterns(final)
