"""Portable stage checkpoints (safetensors + config metadata) and atomic file writes.

Nothing here unpickles: exported stages are safetensors files whose metadata carries the
plugin name and the resolved config as JSON. Every write goes to a temp file in the same
directory and is renamed into place, so a crash or a full disk never corrupts the last good file.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import CheckpointError

FORMAT_VERSION = "1"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_dir_once(final: str | Path, marker: str, build: Callable[[Path], None]) -> Path:
    """Build a cache folder once: ``build(tmp)`` fills a temp folder beside ``final``, which is renamed
    into place only when complete (``tmp / marker`` exists), under a file lock so concurrent processes
    wait and then reuse it. A folder without its marker is a half-built leftover and is replaced."""
    import fcntl
    import shutil

    final = Path(final)
    if (final / marker).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (final / marker).exists():
                tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
                try:
                    build(tmp)
                    if not (tmp / marker).exists():
                        raise RuntimeError(f"building {final} left no {marker}")
                    if final.exists():
                        shutil.rmtree(final)
                    os.replace(tmp, final)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return final


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write JSON atomically (used for done markers, indexes, reports)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return Path(path)


def _unshare(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses aliased tensors (tied weights); store each alias as its own contiguous copy."""
    seen: set[tuple[int, int]] = set()
    out = {}
    for k, v in state_dict.items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset()) if v.numel() else (id(v), 0)
        out[k] = v.detach().clone().contiguous() if key in seen or not v.is_contiguous() else v.detach()
        seen.add(key)
    return out


def save_stage_file(
    path: str | Path, plugin: str, config: Any, state_dict: dict[str, torch.Tensor], extra: dict[str, Any] | None = None
) -> Path:
    """Save a stage's weights and resolved config into one safetensors file."""
    from .config import config_to_dict

    metadata = {
        "soundstage.format": FORMAT_VERSION,
        "soundstage.plugin": plugin,
        "soundstage.config": json.dumps(config_to_dict(config)),
        "soundstage.extra": json.dumps(extra or {}, default=str),
    }
    tensors = {k: v.cpu() for k, v in _unshare(state_dict).items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def read_stage_metadata(path: str | Path) -> dict[str, Any]:
    """The plugin name, config and extra info of a stage file, without loading weights."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: not a soundstage safetensors checkpoint ({exc}); pickled checkpoints are never loaded"
        ) from exc
    if "soundstage.plugin" not in meta:
        raise CheckpointError(f"{path}: safetensors file has no soundstage metadata (plugin/config)")
    return {
        "plugin": meta["soundstage.plugin"],
        "config": json.loads(meta.get("soundstage.config", "{}")),
        "extra": json.loads(meta.get("soundstage.extra", "{}")),
    }


def load_stage_file(path: str | Path, map_location: str = "cpu") -> tuple[str, dict, dict[str, torch.Tensor]]:
    """Read (plugin name, config dict, state dict) from a stage file."""
    meta = read_stage_metadata(path)
    try:
        state_dict = load_file(str(path), device=map_location)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read weights: {exc}") from exc
    return meta["plugin"], meta["config"], state_dict


def check_resume_checkpoint(path: str | Path, stage: str) -> None:
    """Refuse, in one line, a resume checkpoint that is truncated or not a torch zip checkpoint.

    Reads only the zip's central directory (at the end of the file), so a cut-off write is found
    without loading the weights; the content itself is loaded later with ``weights_only=True``.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        if not any(n.endswith("data.pkl") for n in names):
            raise zipfile.BadZipFile("no data.pkl member")
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: cannot resume from this checkpoint (truncated or corrupt: {exc}); "
            f"--restart {stage} trains the stage from scratch"
        ) from exc


def safe_torch_load(path: str | Path, map_location: str = "cpu") -> Any:
    """``torch.load`` restricted to tensors and plain containers (``weights_only=True``)."""
    try:
        return torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as exc:  # UnpicklingError and friends: refuse, naming the file
        raise CheckpointError(f"{path}: refused to load (only weights_only checkpoints are accepted): {exc}") from exc
