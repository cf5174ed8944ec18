"""Token shards: precomputed semantic ids and acoustic codes, and aligned window crops of them.

One sample is ``<key>.semantic.npy`` (int [Ts]), ``<key>.acoustic.npy`` (int [Q, Ta]) and
``<key>.json`` (key, duration, sample_rate, semantic_rate, acoustic_rate + source metadata).
Either array may be absent when only one token stream was computed.
"""
from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import webdataset as wds

from .shard_folder import ShardFolder
from .token_windows import _per_step, _rate_grid, window_lengths  # noqa: F401  (window_lengths re-exported)
from .shard_writer import sanitize_key

STREAM_EXT = {"semantic": "semantic.npy", "acoustic": "acoustic.npy"}


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def load_npy(data: bytes) -> np.ndarray:
    """``.npy`` bytes -> array (never unpickles)."""
    return np.load(io.BytesIO(data), allow_pickle=False)


def _token_dtype(vocab: int | None) -> type:
    return np.int16 if vocab is not None and vocab <= 32767 else np.int32


class TokenShardWriter:
    """Write token samples into ``<out_dir>/<prefix>-%06d.tar`` (a shard gets its name once complete).

    ``out_dir`` is a local folder, an ``s3://`` / ``gs://`` prefix, or a ``ShardFolder``.
    """

    def __init__(self, out_dir: str | Path | ShardFolder, prefix: str, max_bytes: float = 128e6,
                 max_count: int = 100_000) -> None:
        self.folder = out_dir if isinstance(out_dir, ShardFolder) else ShardFolder(out_dir)
        self.prefix = prefix
        self.shards: list[str] = []
        self.count = 0
        self._files: dict[str, Any] = {}
        self._writer = wds.ShardWriter(
            f"{prefix}-%06d.tar", maxcount=max_count, maxsize=max_bytes, post=self._on_close,
            verbose=0, opener=self._open, mtime=0.0,
        )
        self._in_shard = 0

    def _open(self, fname: str):
        fh = self.folder.open_shard(fname)
        self._files[fname] = fh
        return fh

    def _on_close(self, fname: str) -> None:
        # ShardWriter opens a shard eagerly; drop it if it stayed empty
        self.folder.finish_shard(fname, self._files.pop(fname), keep=self._in_shard > 0)
        if self._in_shard == 0:
            return
        self.shards.append(self.folder.url(fname))
        self._in_shard = 0

    def write(
        self,
        key: str,
        meta: dict[str, Any],
        semantic: np.ndarray | None = None,
        acoustic: np.ndarray | None = None,
    ) -> None:
        """Write one sample: ``semantic`` [Ts], ``acoustic`` [Q, Ta] integer arrays + metadata.

        ``key`` comes from the audio shards read; it is sanitised so a hostile ``../`` or absolute
        key never names a tar member outside the folder the shard is extracted into.
        """
        key = sanitize_key(key)
        sample: dict[str, Any] = {"__key__": key, "json": json.dumps({"key": key, **meta}).encode()}
        if semantic is not None:
            sample[STREAM_EXT["semantic"]] = _npy_bytes(np.asarray(semantic).astype(_token_dtype(meta.get("semantic_vocab_size"))))
        if acoustic is not None:
            acoustic = np.asarray(acoustic)
            assert acoustic.ndim == 2, "acoustic codes must be [Q, T]"
            sample[STREAM_EXT["acoustic"]] = _npy_bytes(acoustic.astype(_token_dtype(meta.get("codebook_size"))))
        self._writer.write(sample)  # may close the previous shard first (then _in_shard restarts at 0)
        self._in_shard += 1
        self.count += 1

    def close(self) -> list[str]:
        """Finish the last shard; returns the paths (or URLs) of every shard written."""
        self._writer.close()
        return self.shards


def decode_token_sample(sample: dict[str, Any], streams: tuple[str, ...]) -> dict[str, Any]:
    """A raw webdataset token sample -> {"key", "meta", stream: int64 array} for ``streams``."""
    meta = json.loads(sample["json"])
    out: dict[str, Any] = {"key": sample["__key__"], "meta": meta}
    for s in streams:
        ext = STREAM_EXT[s]
        if ext not in sample:
            raise ValueError(f"token sample {sample['__key__']!r} has no {s} tokens")
        out[s] = load_npy(sample[ext]).astype(np.int64)
    return out


def crop_aligned(item: dict[str, Any], window: Mapping[str, int] | None, rng: random.Random | None) -> dict[str, Any]:
    """Cut the same time span, ``window`` tokens of each of its streams (from ``window_lengths``), out of
    an item (random start if ``rng``, else the start); ``None`` keeps the whole item.

    The start is a multiple of ``1 / gcd(rates)`` seconds, so it falls on a frame boundary of
    every stream (e.g. 25 Hz semantic + 50 Hz acoustic: starts on whole semantic frames).
    """
    if not window:
        return item
    meta = item["meta"]
    rates = {s: float(meta[f"{s}_rate"]) for s in window}
    grid = _rate_grid(list(rates.values()))
    per_step = {s: _per_step(rates[s], grid) for s in window}
    steps = {n // per_step[s] for s, n in window.items()}
    if len(steps) != 1 or any(n % per_step[s] for s, n in window.items()):
        raise ValueError(f"window {dict(window)} is not one span of time of streams at {rates} Hz (use window_lengths)")
    win_steps = steps.pop()
    avail = min(item[s].shape[-1] // per_step[s] for s in window)  # whole grid steps in every stream
    slack = avail - win_steps
    start = rng.randrange(slack + 1) if rng is not None and slack > 0 else 0
    out = dict(item)
    for s in window:
        out[s] = item[s][..., start * per_step[s] : (start + win_steps) * per_step[s]]
    return out
