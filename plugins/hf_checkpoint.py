"""Local Hugging Face ``transformers`` checkpoint directories: the optional import and the checks before loading.

Shared by every plugin that reads a user's downloaded model (SSL features, pretrained codecs). A
checkpoint is a directory on disk with ``config.json``; nothing is ever downloaded. Each check fails
with one line that names the recipe key it came from (``where``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from soundstage.errors import SoundstageError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
SAFETENSORS_INDEX = "model.safetensors.index.json"


def import_transformers(purpose: str, extra: str = "ssl") -> Any:
    """The ``transformers`` module, or a one-line error naming the extra that installs it."""
    try:
        import transformers
    except ImportError as exc:  # optional extra
        raise SoundstageError(
            f"{purpose} needs the optional dependency 'transformers' (pip install 'soundstage[{extra}]')"
        ) from exc
    return transformers


def checkpoint_dir(path: str | Path, where: str) -> Path:
    """``path`` as an existing local directory holding ``config.json``."""
    directory = Path(path).expanduser()
    if not directory.exists():
        raise SoundstageError(f"{where}: {directory} does not exist (give a local transformers checkpoint: config.json + weights)")
    if not directory.is_dir():
        raise SoundstageError(f"{where}: {directory} is a file; give the checkpoint's directory")
    if not (directory / "config.json").is_file():
        raise SoundstageError(f"{where}: {directory} is not a transformers checkpoint (no config.json)")
    return directory


def read_config(directory: Path, where: str) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint directory."""
    try:
        config = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise SoundstageError(f"{where}: cannot read {directory / 'config.json'} ({exc})") from exc
    if not isinstance(config, dict):
        raise SoundstageError(f"{where}: {directory / 'config.json'} is not a JSON object")
    return config


def safetensors_files(directory: Path, where: str) -> list[Path]:
    """The weight files of a checkpoint, refusing one that has only pickled weights (never unpickled)."""
    index = directory / SAFETENSORS_INDEX
    if index.is_file():  # a sharded checkpoint: every shard the index names must be there
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            raise SoundstageError(f"{where}: cannot read {index} ({exc})") from exc
        missing = [n for n in names if not (directory / n).is_file()]
        if missing:
            raise SoundstageError(f"{where}: {directory} lacks weight shards {missing[:3]} named in {SAFETENSORS_INDEX}")
        return [directory / n for n in names]
    files = sorted(directory.glob("*.safetensors"))
    if files:
        return files
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise SoundstageError(
            f"{where}: {directory} holds only pickled weights ({', '.join(pickles[:3])}); soundstage loads safetensors "
            "only (convert once with save_pretrained(dir, safe_serialization=True) in a session you trust)"
        )
    raise SoundstageError(f"{where}: {directory} has no weights (no *.safetensors file)")
