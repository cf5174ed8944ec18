"""``soundstage data shard``: the user's audio (a folder or a manifest) -> FLAC + JSON tar shards.

Workers decode, check, resample, segment and FLAC-encode files in parallel; the main process
writes the shards in input order (so shard contents do not depend on the worker count) and
records every bad file with its reason. Re-running on the same output resumes after the last
completed shard.
"""
from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing as mp
import re
from collections import deque
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path, PurePath
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from anyascii import anyascii
from tqdm import tqdm

from soundstage.config import check_ranges

from .audio_io import BadAudio, check_wave, encode_flac, read_audio
from .object_store import is_object_url
from .shard_writer import AudioShardWriter, sanitize_key

_SAFE_PART = re.compile(r"[A-Za-z0-9_\-]+")
AUDIO_EXTENSIONS = {
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64", ".rf64", ".wv",
}


@dataclass
class ShardJobConfig:
    """Options of a shard job (also the ``data shard`` CLI flags)."""

    sample_rate: int = 16000
    shard_bytes: float = 256e6  # target tar size
    max_per_shard: int = 100_000
    min_seconds: float = 0.1  # shorter files are skipped as too-short
    max_channels: int = 8  # more channels than this is an unsupported layout
    segment_seconds: float | None = None  # split longer files into segments of this length
    num_workers: int = 0  # 0: decode in this process
    prefix: str = "shard"

    def __post_init__(self) -> None:
        check_ranges(self, positive=("sample_rate", "shard_bytes", "segment_seconds"),
                     non_negative=("min_seconds", "num_workers"), at_least_one=("max_per_shard", "max_channels"))


@dataclass
class InputItem:
    """One input file with the key it will have and optional manifest metadata."""

    path: str
    key: str
    text: str | None = None
    speaker: str | None = None


def list_inputs(source: str | Path) -> tuple[list[InputItem], list[dict[str, str]]]:
    """Audio files under a folder (recursive, sorted) or rows of a CSV / JSONL manifest.

    Returns the items and the inputs that get no key (skip records). Paths are absolute, so a
    relative and an absolute spelling of the same folder give the same shards.
    """
    source = Path(source).expanduser().resolve()
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such folder or manifest")
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        rows = [{"path": str(p), "name": str(p.relative_to(source))} for p in files]
    elif source.suffix.lower() in (".csv", ".tsv"):
        with open(source, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t" if source.suffix.lower() == ".tsv" else ","))
    elif source.suffix.lower() in (".jsonl", ".json"):
        rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    else:
        raise ValueError(f"{source}: expected a folder or a .csv/.tsv/.jsonl manifest")
    items, unkeyed, seen = [], [], set()
    for row in rows:
        if "path" not in row:
            raise ValueError(f"{source}: manifest rows need a 'path' column/field")
        path = Path(row["path"])
        if not path.is_absolute():
            path = (source if source.is_dir() else source.parent) / path
        name = str(row.get("name") or row.get("key") or row["path"])
        key = next((k for k in key_candidates(name) if k not in seen), None)
        if key is None:
            unkeyed.append({"source": str(path), "reason": "duplicate-key", "detail": f"{name!r} names another input"})
            continue
        seen.add(key)
        items.append(InputItem(str(path), key, row.get("text") or None, row.get("speaker") or None))
    return items, unkeyed


def key_candidates(name: str) -> list[str]:
    """Sample keys for an input named ``name`` (a relative path), best first.

    A name made of ASCII letters, digits, ``_`` and ``-`` keeps its path without the extension
    (``speaker/a.wav`` -> ``speaker/a``); any other name (``日本.wav``, ``a b.wav``, ``../x.wav``) is
    transliterated to ASCII and gets a short hash of the whole name, so keys stay readable, stable
    and distinct. The later candidates tell apart names that differ only in their extension.
    """
    stem = str(PurePath(name).with_suffix("")) if PurePath(name).suffix else name
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    readable = sanitize_key(anyascii(stem))
    exact = all(_SAFE_PART.fullmatch(p) for p in re.split(r"[\\/]+", stem.strip("/")) if p != ".")
    first = readable if exact else f"{readable}_{digest}"
    return [first, sanitize_key(anyascii(name)), f"{readable}_{digest}"]


def process_file(item: InputItem, cfg: ShardJobConfig) -> dict[str, Any]:
    """Decode + check + segment + encode one file (runs in a worker); never raises for bad audio."""
    try:
        wave, sr, channels = read_audio(item.path, cfg.sample_rate, cfg.max_channels)
        check_wave(wave, sr, cfg.min_seconds)
    except BadAudio as exc:
        return {"source": item.path, "bad": exc.reason, "detail": exc.detail}
    except OSError as exc:  # vanished / unreadable path
        return {"source": item.path, "bad": "unreadable", "detail": str(exc)}
    base = {"source": item.path, "orig_channels": channels}
    base.update({k: v for k, v in (("text", item.text), ("speaker", item.speaker)) if v})
    samples = []
    for i, (offset, seg) in enumerate(_segments(wave, sr, cfg)):
        key = f"{item.key}_seg{i:04d}" if cfg.segment_seconds else item.key
        meta = {**base, "offset": round(offset / sr, 4)} if cfg.segment_seconds else base
        samples.append((key, encode_flac(seg, sr), len(seg) / sr, meta))
    return {"source": item.path, "samples": samples}


def _segments(wave: np.ndarray, sr: int, cfg: ShardJobConfig) -> Iterator[tuple[int, np.ndarray]]:
    if not cfg.segment_seconds:
        yield 0, wave
        return
    size = max(int(cfg.segment_seconds * sr), 1)
    starts = list(range(0, len(wave), size))
    # A tail shorter than min_seconds is merged into the previous segment rather than dropped.
    if len(starts) > 1 and (len(wave) - starts[-1]) / sr < cfg.min_seconds:
        starts.pop()
    for j, s in enumerate(starts):
        end = starts[j + 1] if j + 1 < len(starts) else len(wave)
        yield s, wave[s:end]


def _ordered_map(fn: Callable, items: Iterable, executor: Executor | None, window: int) -> Iterator:
    """``map`` that keeps at most ``window`` tasks in flight and yields results in input order."""
    if executor is None:
        yield from map(fn, items)
        return
    pending: deque = deque()
    for item in items:
        pending.append(executor.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _job(args: tuple[InputItem, ShardJobConfig]) -> dict[str, Any]:
    return process_file(*args)


def shard_audio(source: str | Path, out_dir: str | Path, cfg: ShardJobConfig | None = None, progress: bool = True) -> dict[str, Any]:
    """Shard every audio file of ``source`` into ``out_dir`` (a folder or ``s3://`` / ``gs://`` prefix); returns the index."""
    cfg = cfg or ShardJobConfig()
    items, unkeyed = list_inputs(source)
    if not items and not unkeyed:
        raise ValueError(f"{source}: no audio files found (extensions: {', '.join(sorted(AUDIO_EXTENSIONS))})")
    out = str(out_dir) if is_object_url(str(out_dir)) else Path(out_dir).expanduser().resolve()
    writer = AudioShardWriter(
        out, cfg.sample_rate, prefix=cfg.prefix, max_bytes=cfg.shard_bytes,
        max_count=cfg.max_per_shard, extra_index={"source": str(Path(source).expanduser().resolve()), "config": asdict(cfg)},
    )
    for bad in unkeyed:
        if not writer.has_source(bad["source"]):
            writer.skip(bad["source"], bad["reason"], bad["detail"])
    todo = [it for it in items if not writer.has_source(it.path)]
    executor = ProcessPoolExecutor(cfg.num_workers, mp_context=mp.get_context("spawn")) if cfg.num_workers > 0 else None
    try:
        results = _ordered_map(_job, ((it, cfg) for it in todo), executor, window=4 * max(cfg.num_workers, 1))
        for res in tqdm(results, total=len(todo), unit="file", desc="shard", disable=not progress):
            if "bad" in res:
                writer.skip(res["source"], res["bad"], res["detail"])
                continue
            for key, flac, seconds, meta in res["samples"]:
                if not writer.has_key(key):  # resumed: part of this file is already in a shard
                    writer.write_encoded(key, flac, seconds, meta)
            writer.done_source(res["source"])
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)
    index = writer.close()
    index["num_inputs"] = len(items) + len(unkeyed)
    return index


def format_report(index: dict[str, Any]) -> str:
    """A human summary of a shard job: totals and every skipped file with its reason."""
    lines = [
        f"{index['num_samples']} samples, {index['total_seconds'] / 3600:.3f} h in {index['num_shards']} shards "
        f"at {index['sample_rate']} Hz ({index.get('pattern', '')})",
    ]
    skipped = index.get("skipped", [])
    if skipped:
        counts: dict[str, int] = {}
        for s in skipped:
            counts[s["reason"]] = counts.get(s["reason"], 0) + 1
        lines.append(f"skipped {len(skipped)} files: " + ", ".join(f"{r}={n}" for r, n in sorted(counts.items())))
        lines += [f"  {s['reason']:<13} {s['source']}  {s['detail']}" for s in skipped]
    return "\n".join(lines)
