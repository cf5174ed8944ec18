"""Paths in a done marker's outputs: written relative to the stage directory (``./...``), so a run
directory that is moved or copied hands its own files on, and resolved again when read."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def relative_path(path: Path, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(base.resolve()))
    except ValueError:
        return str(Path(path).resolve())


def map_paths(outputs: dict[str, Any], change) -> dict[str, Any]:
    """``outputs`` with ``change`` applied to every string value (also inside lists)."""
    return {key: [change(v) for v in value] if isinstance(value, list) else change(value)
            for key, value in outputs.items()}


def portable_outputs(outputs: dict[str, Any], stage_dir: Path) -> dict[str, Any]:
    """Output paths inside the stage directory written as ``./relative``, so a run directory that is
    moved or copied (another disk, another machine) hands its own files on, not the old location's."""
    root = stage_dir.resolve()

    def change(value: Any) -> Any:
        if isinstance(value, str) and value and not value.startswith("./"):  # (relative: to the cwd, as written)
            path = Path(value).resolve()
            if path == root or root in path.parents:
                return "./" if path == root else f"./{path.relative_to(root)}"
        return value

    return map_paths(outputs, change)


def absolute_outputs(outputs: dict[str, Any], stage_dir: Path) -> dict[str, Any]:
    """Output values written as ``./relative`` paths are resolved against the stage directory."""
    return map_paths(outputs, lambda v: str(stage_dir / v[2:]) if isinstance(v, str) and v.startswith("./") else v)
