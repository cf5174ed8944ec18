"""Where shard writers put their files: a local folder, or a prefix on object storage (``s3://bucket/x``).

A local shard is written under a temporary name and renamed once complete; an upload to object
storage appears under its name only when it is closed, which gives the same guarantee: no reader
ever sees a truncated shard. Object stores cannot append, so an appended log (``progress.jsonl``
locally) is one small object per line there, under ``progress/``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from soundstage.checkpoint import write_json_atomic

from . import object_store


class ShardFolder:
    """A folder of shards and their index, local or on object storage; files are addressed by name."""

    def __init__(self, location: str | Path) -> None:
        self.remote = object_store.is_object_url(str(location))
        if self.remote:
            self.location = str(location).rstrip("/")
            object_store.glob(self.url("*"), shown=f"{self.location}/")  # fail now on a wrong bucket, key or endpoint
        else:
            self.path = Path(location).expanduser()
            self.path.mkdir(parents=True, exist_ok=True)
            self.location = str(self.path)
        self._log_lines: dict[str, int] = {}

    def __str__(self) -> str:
        return self.location

    def url(self, name: str) -> str:
        """The full path or URL of the file ``name`` in this folder."""
        return f"{self.location}/{name}" if self.remote else str(self.path / name)

    def names(self, pattern: str) -> list[str]:
        """Names of the files in this folder matching the glob ``pattern``, sorted."""
        if self.remote:
            return sorted(u.rsplit("/", 1)[1] for u in object_store.glob(self.url(pattern)))
        return sorted(p.name for p in self.path.glob(pattern) if p.is_file())

    def exists(self, name: str) -> bool:
        return bool(self.names(name)) if self.remote else (self.path / name).is_file()

    def remove(self, name: str) -> None:
        """Delete the file ``name``; a missing one is fine."""
        if self.remote:
            object_store.remove(self.url(name))
        else:
            (self.path / name).unlink(missing_ok=True)

    def read_text(self, name: str) -> str | None:
        """The content of ``name``, None if it does not exist."""
        if self.remote:
            data = object_store.read_bytes(self.url(name))
            return None if data is None else data.decode()
        path = self.path / name
        return path.read_text() if path.is_file() else None

    def write_json(self, name: str, obj: Any) -> None:
        """Write ``obj`` as JSON, atomically (readers see the old or the new file, never a part)."""
        if self.remote:
            object_store.write_bytes(self.url(name), json.dumps(obj, indent=2).encode())
        else:
            write_json_atomic(self.path / name, obj)

    # --- shards ---------------------------------------------------------------------------------
    def open_shard(self, name: str) -> IO[bytes]:
        """A writable file for the shard ``name``; it gets its name only in ``finish_shard``."""
        if self.remote:
            return object_store.open_url(self.url(name), "wb")
        return open(self.path / f"{name}.tmp", "wb")

    def finish_shard(self, name: str, fh: IO[bytes], keep: bool = True) -> None:
        """Close ``fh`` and publish the shard under ``name``, or throw it away (``keep=False``)."""
        if not self.remote:
            fh.close()
            tmp = self.path / f"{name}.tmp"
            if keep:
                os.replace(tmp, self.path / name)
            else:
                tmp.unlink(missing_ok=True)
            return
        try:
            fh.close()  # the upload completes here
        except Exception as exc:
            raise object_store.error(self.url(name), "write", exc) from None
        if not keep:
            self.remove(name)

    # --- an append-only log of JSON lines -------------------------------------------------------
    def _log_dir(self, name: str) -> str:
        return f"{Path(name).stem}/"

    def read_log(self, name: str) -> list[str]:
        """The lines appended to the log ``name`` so far, in order."""
        if not self.remote:
            text = self.read_text(name)
            return text.splitlines() if text is not None else []
        names = self.names(f"{self._log_dir(name)}*.json")
        self._log_lines[name] = len(names)
        return [(self.read_text(self._log_dir(name) + n) or "").strip() for n in names]

    def append_log(self, name: str, line: str) -> None:
        """Append one line to the log ``name``, durably (fsync locally; one object per line remotely)."""
        if not self.remote:
            with open(self.path / name, "a") as fh:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            return
        if name not in self._log_lines:
            self._log_lines[name] = len(self.names(f"{self._log_dir(name)}*.json"))
        object_store.write_bytes(self.url(f"{self._log_dir(name)}{self._log_lines[name]:08d}.json"), line.encode())
        self._log_lines[name] += 1

    def clear_log(self, name: str) -> None:
        """Forget the log ``name``."""
        if not self.remote:
            self.remove(name)
            return
        for n in self.names(f"{self._log_dir(name)}*.json"):
            self.remove(self._log_dir(name) + n)
        self._log_lines[name] = 0

