"""Writing audio samples into WebDataset tar shards, with an index and resumable progress.

One sample is ``<key>.flac`` + ``<key>.json``. Shards are written under a temp name and renamed
when closed (on object storage: uploads that appear when complete), so a crash never leaves a
truncated shard under a real name. Every closed shard is appended to ``progress.jsonl`` with the
keys and sources it holds; a re-run reads it back, keeps those shards and continues numbering
after them. The output folder may be local or an ``s3://`` / ``gs://`` prefix (``ShardFolder``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import webdataset as wds

from .audio_io import encode_flac
from .shard_folder import ShardFolder

PROGRESS_FILE = "progress.jsonl"
INDEX_FILE = "index.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]+")


def sanitize_key(name: str) -> str:
    """A WebDataset key from a relative path: no dots (webdataset splits on them), no ``..``, no absolute path."""
    parts = [p for p in re.split(r"[\\/]+", name) if p not in ("", ".", "..")]
    parts = [_UNSAFE.sub("_", p).strip("_") or "_" for p in parts]
    return "/".join(parts) or "_"


@dataclass
class ShardProgress:
    """What completed shards already hold (read back from ``progress.jsonl``)."""

    shards: list[dict[str, Any]] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)
    skipped: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def load(cls, folder: ShardFolder) -> "ShardProgress":
        prog = cls()
        lines = folder.read_log(PROGRESS_FILE)
        present = set(folder.names("*.tar*")) if lines else set()
        for line in lines:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a crash: its shard is redone
                continue
            if rec["shard"] and rec["shard"] not in present:
                continue
            prog.shards.append(rec)
            prog.keys.update(rec["keys"])
            prog.sources.update(rec["sources"])
            prog.skipped.extend(rec.get("skipped", []))
        return prog


class AudioShardWriter:
    """Write (key, wave, metadata) samples as FLAC + JSON into ``<prefix>-%06d.tar`` shards.

    ``max_bytes`` / ``max_count`` bound each shard. ``done_source(src)`` marks a source file whose
    samples have all been written (so a resumed run can skip it); ``skip(src, reason)`` records a
    bad file for the report. ``close()`` writes ``index.json``.
    """

    def __init__(
        self,
        out_dir: str | Path,
        sample_rate: int,
        prefix: str = "shard",
        max_bytes: float = 256e6,
        max_count: int = 100_000,
        resume: bool = True,
        extra_index: dict[str, Any] | None = None,
    ) -> None:
        self.folder = ShardFolder(out_dir)
        self.sample_rate = sample_rate
        self.prefix = prefix
        self.max_bytes, self.max_count = max_bytes, max_count
        self.extra_index = extra_index or {}
        if not resume:
            self.folder.clear_log(PROGRESS_FILE)
        self.progress = ShardProgress.load(self.folder)
        self._remove_stale_shards()
        self._writer: wds.ShardWriter | None = None
        self._files: dict[str, Any] = {}
        self._pending: dict[str, Any] = self._empty_pending()
        self._open_sources: set[str] = set()

    # --- bookkeeping ---------------------------------------------------------------------------
    @staticmethod
    def _empty_pending() -> dict[str, Any]:
        return {"keys": [], "sources": [], "count": 0, "duration": 0.0, "skipped": []}

    def _remove_stale_shards(self) -> None:
        """Delete shards (and temp files) a crashed run left that no progress line vouches for."""
        kept = {rec["shard"] for rec in self.progress.shards}
        for name in self.folder.names(f"{self.prefix}-*.tar*"):
            if name not in kept:
                self.folder.remove(name)

    def _open(self, fname: str):
        # The shard gets its real name in _on_close, once the tar is complete.
        fh = self.folder.open_shard(fname)
        self._files[fname] = fh
        return fh

    def _on_close(self, fname: str) -> None:
        pend, self._pending = self._pending, self._empty_pending()
        empty = pend["count"] == 0  # nothing written since the shard opened: drop it
        self.folder.finish_shard(fname, self._files.pop(fname), keep=not empty)
        if empty:
            self._pending = pend
            return
        self._record({"shard": fname, **pend})

    def _record(self, rec: dict[str, Any]) -> None:
        self.progress.shards.append(rec)
        self.progress.keys.update(rec["keys"])
        self.progress.sources.update(rec["sources"])
        self.progress.skipped.extend(rec["skipped"])
        self.folder.append_log(PROGRESS_FILE, json.dumps(rec))

    # --- public API ------------------------------------------------------------------------------
    def has_key(self, key: str) -> bool:
        """True if ``key`` is in a shard completed by an earlier run."""
        return key in self.progress.keys

    def has_source(self, source: str) -> bool:
        """True if every sample of ``source`` is in completed shards (or it was skipped) already."""
        return source in self.progress.sources

    def write(self, key: str, wave: np.ndarray, meta: dict[str, Any]) -> None:
        """Write one mono float32 ``wave`` [T] at ``self.sample_rate`` with its JSON metadata."""
        self.write_encoded(key, encode_flac(wave, self.sample_rate), len(wave) / self.sample_rate, meta)

    def write_encoded(self, key: str, flac: bytes, seconds: float, meta: dict[str, Any]) -> None:
        """Write already FLAC-encoded audio (at ``self.sample_rate``) lasting ``seconds``.

        ``key`` is passed through :func:`sanitize_key` (a no-op for keys it made), so no tar member
        can name a path outside the folder the shard is extracted into.
        """
        key = sanitize_key(key)
        if self._writer is None:
            start = len([s for s in self.progress.shards if s["shard"]])
            pattern = f"{self.prefix}-%06d.tar"  # names within the folder: _open and _on_close place them
            self._writer = wds.ShardWriter(
                pattern, maxcount=self.max_count, maxsize=self.max_bytes, post=self._on_close,
                start_shard=start, verbose=0, opener=self._open, mtime=0.0,
            )
        meta = {"key": key, "sample_rate": self.sample_rate, "duration": round(seconds, 6), **meta}
        # ShardWriter may close the previous shard inside write(); count this sample afterwards.
        self._writer.write({"__key__": key, "flac": flac, "json": json.dumps(meta).encode()})
        self._pending["keys"].append(key)
        self._pending["count"] += 1
        self._pending["duration"] += seconds

    def done_source(self, source: str) -> None:
        """All samples of ``source`` have been written (recorded with the shard that closes next)."""
        self._pending["sources"].append(source)

    def skip(self, source: str, reason: str, detail: str = "") -> None:
        """Record a bad input file (listed in the report; a resumed run does not retry it)."""
        self._pending["skipped"].append({"source": source, "reason": reason, "detail": detail})
        self._pending["sources"].append(source)

    def close(self) -> dict[str, Any]:
        """Finish the last shard and write ``index.json``; returns the index."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._pending["skipped"] or self._pending["sources"]:
            # Skips/sources after the last shard: persist them on a sample-less progress line.
            self._record({"shard": "", **self._pending})
            self._pending = self._empty_pending()
        return self.write_index()

    def write_index(self) -> dict[str, Any]:
        """Index beside the shards: shard names, counts, total duration, sample rate, skips."""
        shards = [s for s in self.progress.shards if s["shard"]]
        skipped = self.progress.skipped
        index = {
            "sample_rate": self.sample_rate,
            "num_shards": len(shards),
            "num_samples": sum(s["count"] for s in shards),
            "total_seconds": round(sum(s["duration"] for s in shards), 3),
            "shards": [{"name": s["shard"], "count": s["count"], "seconds": round(s["duration"], 3)} for s in shards],
            "pattern": brace_pattern(self.prefix, len(shards)),
            "skipped": skipped,
            **self.extra_index,
        }
        self.folder.write_json(INDEX_FILE, index)
        return index


def brace_pattern(prefix: str, num_shards: int) -> str:
    """``prefix-{000000..00000N}.tar`` for ``num_shards`` consecutive shards."""
    if num_shards <= 0:
        return ""
    if num_shards == 1:
        return f"{prefix}-000000.tar"
    return f"{prefix}-{{000000..{num_shards - 1:06d}}}.tar"
