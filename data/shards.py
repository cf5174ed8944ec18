"""Shard lists: brace patterns, local files, directories, list files and URLs -> a list of shard URLs."""
from __future__ import annotations

import json
import os
import re
import tarfile
from pathlib import Path

import braceexpand

from . import remote  # noqa: F401  (webdataset opens http(s) shards with soundstage's bounded opener)
from .shard_writer import INDEX_FILE

REMOTE_PREFIXES = ("pipe:", "http://", "https://", "s3://", "gs://", "sftp://", "ftp://")
SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
_KEY = re.compile(r"^((?:.*/|)[^./]+)[.]([^/]*)$")  # webdataset's key/extension split


def is_remote(url: str) -> bool:
    return url.startswith(REMOTE_PREFIXES)


def expand_shards(spec: str | list[str] | None) -> list[str]:
    """Resolve a shard spec into shard URLs.

    ``spec`` may be a brace pattern (``a/shard-{000000..000009}.tar``), several specs joined by
    ``::``, a directory (every ``*.tar`` below it, sorted), a ``.txt`` list file (one spec per line,
    relative to the file), a single local path, or a ``pipe:`` / http / s3 URL as webdataset opens.
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
            urls.extend(braceexpand.braceexpand(item))
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


def count_samples(urls: list[str]) -> int | None:
    """Number of samples in local shards: from ``index.json`` beside them, else by reading tar headers.

    Returns ``None`` for remote shards (their size is not known without reading them).
    """
    if any(is_remote(u) for u in urls):
        return None
    counts: dict[str, int] = {}
    for folder in {Path(u).parent for u in urls}:
        index_path = folder / INDEX_FILE
        if index_path.exists():
            try:
                for shard in json.loads(index_path.read_text()).get("shards", []):
                    counts[str(folder / shard["name"])] = int(shard["count"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                pass
    total = 0
    for url in urls:
        if url in counts:
            total += counts[url]
            continue
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
