"""Shard lists: brace patterns, local files, directories, list files and URLs -> a list of shard URLs."""
from __future__ import annotations

import json
import os
import re
import tarfile
from pathlib import Path

import braceexpand

from . import object_store, remote  # noqa: F401  (remote: webdataset opens http(s), s3:// and gs:// with our openers)
from .shard_writer import INDEX_FILE

REMOTE_PREFIXES = ("pipe:", "http://", "https://", "s3://", "gs://", "gcs://", "sftp://", "ftp://")
SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
_KEY = re.compile(r"^((?:.*/|)[^./]+)[.]([^/]*)$")  # webdataset's key/extension split


def is_remote(url: str) -> bool:
    return url.startswith(REMOTE_PREFIXES)


def expand_shards(spec: str | list[str] | None) -> list[str]:
    """Resolve a shard spec into shard URLs.

    ``spec`` may be a brace pattern (``a/shard-{000000..000009}.tar``), several specs joined by
    ``::``, a directory (every ``*.tar`` below it, sorted), a ``.txt`` list file (one spec per line,
    relative to the file), a single local path, or a ``pipe:`` / http(s) / s3 / gs URL. An ``s3://`` or
    ``gs://`` URL that does not name a ``.tar`` is a prefix: every shard under it, sorted.
    """
    if not spec:
        return []
    specs = spec if isinstance(spec, list) else str(spec).split("::")
    urls: list[str] = []
    for item in specs:
        item = os.path.expanduser(item.strip())
        if not item:
            continue
        if is_remote(item):
            for url in braceexpand.braceexpand(item):
                if object_store.is_object_url(url) and not url.endswith(SHARD_SUFFIXES):
                    listed = object_store.list_objects(url, SHARD_SUFFIXES)
                    if not listed:
                        raise FileNotFoundError(f"no shards ({', '.join(SHARD_SUFFIXES)}) under {url}")
                    urls.extend(listed)
                else:
                    urls.append(url)
            continue
        path = Path(item)
        if path.is_dir():
            urls.extend(str(p) for p in sorted(path.rglob("*")) if p.name.endswith(SHARD_SUFFIXES))
        elif path.suffix == ".txt" and path.is_file():
            for line in path.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    target = line if is_remote(line) or Path(line).is_absolute() else str(path.parent / line)
                    urls.extend(expand_shards(target))
        else:
            urls.extend(braceexpand.braceexpand(item))
    missing = [u for u in urls if not is_remote(u) and not Path(u).exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} shard(s) of {spec!r} do not exist, e.g. {missing[0]}")
    if not urls:
        raise FileNotFoundError(f"no shards found for {spec!r}")
    return urls


def shard_folder(url: str) -> str:
    """The folder (or object-storage prefix) a shard URL is in."""
    return url.rsplit("/", 1)[0] if object_store.is_object_url(url) else str(Path(url).parent)


def read_index(folder: str) -> dict | None:
    """The ``index.json`` of a folder of shards, local or on object storage; None if absent or unreadable."""
    if object_store.is_object_url(folder):
        data = object_store.read_bytes(f"{folder}/{INDEX_FILE}")
    else:
        path = Path(folder) / INDEX_FILE
        data = path.read_bytes() if path.is_file() else None
    try:
        index = json.loads(data) if data is not None else None
    except ValueError:
        return None
    return index if isinstance(index, dict) else None


def count_samples(urls: list[str]) -> int | None:
    """Number of samples in shards: from the ``index.json`` beside them, else by reading local tar headers.

    Returns ``None`` for http(s) / ``pipe:`` shards and for object-storage shards no index counts
    (their size is not known without reading them).
    """
    if any(is_remote(u) and not object_store.is_object_url(u) for u in urls):
        return None
    counts: dict[str, int] = {}
    for folder in {shard_folder(u) for u in urls}:
        try:
            for shard in (read_index(folder) or {}).get("shards", []):
                name = shard["name"]
                counts[f"{folder}/{name}" if object_store.is_object_url(folder) else str(Path(folder) / name)] = \
                    int(shard["count"])
        except (KeyError, TypeError, ValueError, AttributeError):
            pass
    total = 0
    for url in urls:
        if url in counts:
            total += counts[url]
            continue
        if is_remote(url):
            return None
        keys = set()
        try:
            with tarfile.open(url) as tf:
                for member in tf:
                    match = _KEY.match(member.name) if member.isfile() else None
                    if match:
                        keys.add(match.group(1))
        except (tarfile.TarError, OSError):
            continue
        total += len(keys)
    return total
