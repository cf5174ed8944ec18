"""Procedural instruments in numpy: additive, plucked, FM and drum voices rendered note by note."""
from __future__ import annotations

import numpy as np

TIMBRES = ("organ", "pluck", "bell", "square", "saw_pad", "flute")


def midi_to_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def _adsr(n: int, sr: int, attack: float, decay: float, sustain: float, release: float) -> np.ndarray:
    """Attack-decay-sustain envelope of ``n`` samples with a release tail inside the note."""
    t = np.arange(n) / sr
    env = np.where(t < attack, t / max(attack, 1e-4), sustain + (1 - sustain) * np.exp(-(t - attack) / max(decay, 1e-4)))
    rel = int(min(release * sr, n))
    if rel > 0:
        env[n - rel:] *= np.linspace(1.0, 0.0, rel)
    return env.astype(np.float32)


def _harmonics(f0: float, t: np.ndarray, amps: list[float], sr: int, decay_per_harmonic: float = 0.0) -> np.ndarray:
    out = np.zeros_like(t)
    for k, a in enumerate(amps, start=1):
        if k * f0 >= sr / 2:  # no aliasing: drop partials above Nyquist
            break
        partial = a * np.sin(2 * np.pi * k * f0 * t)
        if decay_per_harmonic:
            partial *= np.exp(-decay_per_harmonic * k * t)
        out += partial
    return out


def render_note(timbre: str, pitch: float, seconds: float, sr: int, velocity: float = 0.8) -> np.ndarray:
    """One note of ``timbre`` at MIDI ``pitch`` lasting ``seconds`` -> float32 [T]."""
    n = max(int(seconds * sr), 1)
    t = np.arange(n, dtype=np.float32) / sr
    f0 = midi_to_hz(pitch)
    if timbre == "organ":
        x = _harmonics(f0, t, [1.0, 0.5, 0.25, 0.0, 0.15, 0.0, 0.0, 0.1], sr) * _adsr(n, sr, 0.01, 0.1, 0.9, 0.03)
    elif timbre == "pluck":
        x = _harmonics(f0, t, [1.0 / k for k in range(1, 12)], sr, decay_per_harmonic=2.5) * np.exp(-3.0 * t)
    elif timbre == "bell":
        mod = 2.0 * np.exp(-4.0 * t) * np.sin(2 * np.pi * 1.4 * f0 * t)
        x = np.sin(2 * np.pi * f0 * t + mod) * np.exp(-2.5 * t)
    elif timbre == "square":
        vib = 1.0 + 0.004 * np.sin(2 * np.pi * 5.5 * t)
        x = _harmonics(f0, t * vib, [1.0 / k if k % 2 else 0.0 for k in range(1, 16)], sr) * _adsr(n, sr, 0.02, 0.2, 0.7, 0.05)
    elif timbre == "saw_pad":
        detune = _harmonics(f0 * 1.004, t, [1.0 / k for k in range(1, 10)], sr)
        x = 0.5 * (_harmonics(f0, t, [1.0 / k for k in range(1, 10)], sr) + detune) * _adsr(n, sr, 0.25, 0.5, 0.8, 0.2)
    elif timbre == "flute":
        breath = np.random.default_rng(int(pitch * 1000)).standard_normal(n).astype(np.float32) * 0.02
        x = (_harmonics(f0, t, [1.0, 0.2, 0.08], sr) + breath) * _adsr(n, sr, 0.06, 0.2, 0.85, 0.06)
    elif timbre == "bass":
        x = _harmonics(f0, t, [1.0, 0.4, 0.15], sr) * _adsr(n, sr, 0.005, 0.25, 0.6, 0.03)
    else:
        raise ValueError(f"unknown timbre {timbre!r}")
    return (velocity * x).astype(np.float32)


def render_drum(kind: str, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One drum hit (``kick``, ``snare`` or ``hat``) -> float32 [T]."""
    if kind == "kick":
        t = np.arange(int(0.25 * sr)) / sr
        freq = 50 + 90 * np.exp(-25 * t)  # pitch sweep down
        return (np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-12 * t)).astype(np.float32)
    if kind == "snare":
        t = np.arange(int(0.18 * sr)) / sr
        noise = rng.standard_normal(t.size)
        return ((0.6 * noise + 0.4 * np.sin(2 * np.pi * 190 * t)) * np.exp(-20 * t) * 0.5).astype(np.float32)
    if kind == "hat":
        t = np.arange(int(0.05 * sr)) / sr
        noise = np.diff(rng.standard_normal(t.size + 1))  # first difference: a crude high-pass
        return (noise * np.exp(-60 * t) * 0.15).astype(np.float32)
    raise ValueError(f"unknown drum {kind!r}")


def mix_in(buffer: np.ndarray, sound: np.ndarray, start: int) -> None:
    """Add ``sound`` into ``buffer`` at sample ``start`` (clipped at the end)."""
    end = min(start + len(sound), len(buffer))
    if end > start:
        buffer[start:end] += sound[: end - start]
