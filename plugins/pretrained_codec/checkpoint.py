"""A codec checkpoint on disk: what it is (checked before any weight is read) and how its model is built.

``transformers`` is imported only here and only when a checkpoint is read. Weights are safetensors
only; a model is built from its directory (``local_files_only``) or, for an exported stage, from the
checkpoint's own tensors and config.json carried inside the stage file, through the same
``from_pretrained`` so transformers' key conversions apply either way.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from soundstage.errors import SoundstageError
from soundstage.plugins.hf_checkpoint import checkpoint_dir, import_transformers, read_config, safetensors_files

from .families import CodecFacts, Family, family_of, supported_titles

PURPOSE = "a pretrained codec"


@dataclass
class CodecSource:
    """A checked checkpoint directory."""

    directory: Path
    family: Family
    raw_config: dict[str, Any]  # config.json as written by save_pretrained
    weight_files: list[Path]


def inspect_checkpoint(path: str | Path, where: str) -> CodecSource:
    """Check ``path`` is a local, safetensors checkpoint of a supported codec; reads no weights."""
    directory = checkpoint_dir(path, where)
    raw = read_config(directory, where)
    family = checked_family(raw, where, directory)
    return CodecSource(directory.resolve(), family, raw, safetensors_files(directory, where))


def checked_family(raw: dict[str, Any], where: str, source: Any) -> Family:
    """The family of a config.json, or a one-line error naming what the directory holds instead."""
    family = family_of(str(raw.get("model_type", "")))
    if family is None:
        what = raw.get("model_type") or "model without a model_type"
        raise SoundstageError(f"{where}: {source} holds a {what!r} checkpoint, not a codec (supported: {supported_titles()})")
    return family


def hf_config(family: Family, raw: dict[str, Any]) -> Any:
    """The transformers config object of a config.json (no weights, no network)."""
    tf = import_transformers(PURPOSE, "codecs")
    return getattr(tf, family.config_class).from_dict(dict(raw))


def codec_facts(family: Family, raw: dict[str, Any], where: str) -> CodecFacts:
    """What the checkpoint's config declares, or a one-line error if it is not a usable mono codec."""
    cfg = hf_config(family, raw)
    reason = family.unsupported(cfg)
    if reason:
        raise SoundstageError(f"{where}: this {family.title} checkpoint cannot be used: {reason}")
    return family.facts(cfg)


def load_model(source: CodecSource, where: str) -> nn.Module:
    """The model of a checkpoint directory, in eval mode with frozen weights."""
    cls = getattr(import_transformers(PURPOSE, "codecs"), source.family.model_class)
    return _from_pretrained(cls, f"{where}: {source.directory}", str(source.directory), local_files_only=True,
                            use_safetensors=True)


def model_from_tensors(family: Family, raw: dict[str, Any], tensors: dict[str, Tensor], where: str) -> nn.Module:
    """The model rebuilt from a checkpoint's own tensors and config.json (as carried by an exported stage)."""
    cls = getattr(import_transformers(PURPOSE, "codecs"), family.model_class)
    return _from_pretrained(cls, where, None, config=hf_config(family, raw), state_dict=tensors, local_files_only=True)


def _from_pretrained(cls: Any, where: str, *args: Any, **kwargs: Any) -> nn.Module:
    """``cls.from_pretrained`` in eval mode with frozen weights; weights that do not fit are a one-line error."""
    try:
        model, info = cls.from_pretrained(*args, output_loading_info=True, **kwargs)
    except (RuntimeError, ValueError, OSError) as exc:  # e.g. shapes that differ from config.json's
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SoundstageError(f"{where}: weights do not fit the model its config.json describes ({first})") from exc
    # transformers would otherwise fill missing weights with random ones and only log a warning
    missing = sorted(info.get("missing_keys") or [])
    mismatched = sorted(str(m) for m in info.get("mismatched_keys") or [])
    if missing or mismatched:
        raise SoundstageError(f"{where}: weights do not fit the model its config.json describes "
                              f"(missing: {missing[:3]}, wrong shape: {mismatched[:3]})")
    return model.eval().requires_grad_(False)


def read_tensors(files: list[Path]) -> dict[str, Tensor]:
    """Every tensor of a checkpoint's safetensors files, under its own names."""
    from safetensors.torch import load_file

    tensors: dict[str, Tensor] = {}
    for f in files:
        tensors.update(load_file(str(f)))
    return tensors


def files_sha256(files: list[Path]) -> str:
    """One digest of the weight files' names and content (recorded, then compared at load time)."""
    digest = hashlib.sha256()
    for f in sorted(files):
        digest.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
