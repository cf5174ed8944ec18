"""Audio decode / encode helpers: libsndfile decode, mono downmix, soxr resampling, validity checks.

Every check returns a short machine-readable reason (``unreadable``, ``empty``, ``all-zero``,
``non-finite``, ``too-short``, ``bad-channels``) plus a detail, so a shard job can skip a bad
file and list why in its report instead of aborting.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

REASONS = ("unreadable", "empty", "all-zero", "non-finite", "too-short", "bad-channels")


class BadAudio(Exception):
    """A file that cannot become a training sample; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def resample(wave: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample a mono ``wave`` [T] (or [T, C]) with soxr's high-quality filter."""
    if sr_in == sr_out:
        return wave.astype(np.float32, copy=False)
    return soxr.resample(wave.astype(np.float32, copy=False), sr_in, sr_out, quality="HQ").astype(np.float32)


def speed_perturb(wave: np.ndarray, sample_rate: int, speed: float) -> np.ndarray:
    """``wave`` played ``speed`` times faster (Kaldi's speed perturbation): tempo, pitch and formants all
    scale by ``speed``, so a voice becomes another plausible voice; the length becomes ``len / speed``."""
    return resample(wave, round(sample_rate * speed), sample_rate)


def downmix(wave: np.ndarray) -> np.ndarray:
    """[T, C] or [T] -> [T] by averaging channels."""
    return wave.mean(axis=1) if wave.ndim == 2 else wave


def read_audio(
    source: str | Path | BinaryIO | bytes,
    sample_rate: int | None = None,
    max_channels: int = 8,
) -> tuple[np.ndarray, int, int]:
    """Decode any format libsndfile reads -> (mono float32 [T], sample rate, original channels).

    Raises :class:`BadAudio` (``unreadable`` / ``bad-channels``) when it cannot be decoded.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    try:
        wave, sr = sf.read(source, dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises several types; any failure means unreadable
        raise BadAudio("unreadable", f"{type(exc).__name__}: {exc}") from exc
    channels = wave.shape[1]
    if channels < 1 or channels > max_channels:
        raise BadAudio("bad-channels", f"{channels} channels (at most {max_channels} supported)")
    mono = downmix(wave)  # [T, C] -> [T]
    if sample_rate is not None and len(mono) and sr != sample_rate:
        # Resample only finite audio: soxr would smear a NaN over the whole file.
        if np.isfinite(mono).all():
            mono = resample(mono, sr, sample_rate)
        sr = sample_rate
    return mono, int(sr), channels


def check_wave(wave: np.ndarray, sample_rate: int, min_seconds: float = 0.0) -> None:
    """Raise :class:`BadAudio` if ``wave`` [T] is empty, silent, non-finite or too short."""
    if wave.size == 0:
        raise BadAudio("empty", "no samples")
    if not np.isfinite(wave).all():
        raise BadAudio("non-finite", f"{int((~np.isfinite(wave)).sum())} NaN/inf samples")
    if not np.any(wave):
        raise BadAudio("all-zero", f"{wave.size} samples, all zero")
    seconds = wave.size / sample_rate
    if seconds < min_seconds:
        raise BadAudio("too-short", f"{seconds:.3f}s < {min_seconds}s")


def encode_flac(wave: np.ndarray, sample_rate: int) -> bytes:
    """Mono float [T] -> 16-bit FLAC bytes (clipped to [-1, 1])."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(wave, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode_audio_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Encoded audio bytes (FLAC, WAV, ...) -> (mono float32 [T], sample rate)."""
    wave, sr, _ = read_audio(data, max_channels=1 << 16)
    return wave, sr


def write_wav(path: str | Path, wave: np.ndarray, sample_rate: int) -> Path:
    """Write mono float audio [T] as 16-bit WAV, atomically; audio over full scale is scaled down, never clipped."""
    from soundstage.checkpoint import atomic_path

    wave = np.asarray(wave, dtype=np.float32)
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    if peak > 1.0:
        wave = wave / peak  # generated audio can overshoot
    path = Path(path)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), wave, sample_rate, format="WAV", subtype="PCM_16")
    return path

