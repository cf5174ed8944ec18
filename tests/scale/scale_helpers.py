"""Shared helpers of the scale tests: tiny tone shards, a free TCP port."""
from __future__ import annotations

import socket
from pathlib import Path

import numpy as np

from soundstage.data.shard_writer import AudioShardWriter

SR = 16000


def tone(seconds: float, rng: np.random.Generator, sample_rate: int = SR) -> np.ndarray:
    """A gliding tone plus a little noise: float32 [T]."""
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    f = rng.uniform(100, 800)
    return (0.3 * np.sin(2 * np.pi * f * t * (1 + 0.2 * t)) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def write_tone_shards(out: Path, prefix: str, counts: list[int], seed: int = 0) -> list[str]:
    """One shard ``<prefix><i>-000000.tar`` per entry of ``counts`` (that many 0.6-1.6 s tones); their paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for shard, n in enumerate(counts):
        writer = AudioShardWriter(out, SR, prefix=f"{prefix}{shard}", resume=False)
        for i in range(n):
            writer.write(f"{prefix}{shard}_{i:03d}", tone(rng.uniform(0.6, 1.6), rng), {})
        writer.close()
        paths.append(str(out / f"{prefix}{shard}-000000.tar"))
    return paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
