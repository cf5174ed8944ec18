"""The embedded music corpus: procedural multi-instrument pieces with long-term structure.

Each piece has its own key, mode, tempo, chord progression and instruments (melody, chords,
bass, optional drums). The melody is built from two motifs in an A A' B A form over a repeating
progression, so there is structure at the bar and phrase level for a language model to learn.
Every choice comes from an RNG seeded by ``(seed, piece)``; validation holds out whole pieces.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .music_synth import mix_in, render_drum, render_note
from .shard_writer import AudioShardWriter

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = ((0, 5, 3, 4), (0, 3, 4, 0), (0, 4, 5, 3), (5, 3, 0, 4), (0, 3, 0, 4), (0, 5, 1, 4))
RHYTHMS = ((1, 1, 1, 1), (2, 1, 1), (1, 1, 2), (0.5, 0.5, 1, 2), (1.5, 0.5, 1, 1), (0.5, 0.5, 0.5, 0.5, 2))
MELODY_TIMBRES = ("square", "flute", "pluck", "bell", "organ")
CHORD_TIMBRES = ("saw_pad", "organ", "pluck")


def _degree_to_midi(degree: int, root: int, scale: tuple[int, ...]) -> int:
    octave, step = divmod(degree, len(scale))
    return root + 12 * octave + scale[step]


def _motif(rng: np.random.Generator) -> list[tuple[float, int]]:
    """One bar of (beats, scale-degree offset) pairs: a rhythm and a small melodic contour."""
    rhythm = RHYTHMS[int(rng.integers(len(RHYTHMS)))]
    steps = np.cumsum(rng.integers(-2, 3, size=len(rhythm)))
    return [(float(b), int(s)) for b, s in zip(rhythm, steps)]


def plan_piece(index: int, seed: int) -> dict[str, Any]:
    """All musical choices of piece ``index`` (deterministic for ``seed``)."""
    rng = np.random.default_rng([seed, index, 7])
    minor = bool(rng.random() < 0.4)
    return {
        "piece": index,
        "root": int(rng.integers(45, 57)),  # MIDI note of the key's tonic in the bass register
        "mode": "minor" if minor else "major",
        "tempo": int(rng.integers(80, 141)),
        "progression": list(PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]),
        "melody_timbre": MELODY_TIMBRES[int(rng.integers(len(MELODY_TIMBRES)))],
        "chord_timbre": CHORD_TIMBRES[int(rng.integers(len(CHORD_TIMBRES)))],
        "drums": bool(rng.random() < 0.7),
        "motif_a": _motif(rng),
        "motif_b": _motif(rng),
    }


def render_piece(plan: dict[str, Any], sample_rate: int) -> tuple[np.ndarray, list[dict]]:
    """Render a planned piece -> (float32 [T], melody notes with start/end seconds)."""
    scale = MINOR if plan["mode"] == "minor" else MAJOR
    beat = 60.0 / plan["tempo"]
    prog = plan["progression"]
    # Form: A A' B A over the progression; A' is A one scale step higher.
    sections = [(plan["motif_a"], 0), (plan["motif_a"], 1), (plan["motif_b"], 0), (plan["motif_a"], 0)]
    bars = [(motif, shift, chord) for motif, shift in sections for chord in prog]  # 16 bars
    total = int((len(bars) * 4 + 2) * beat * sample_rate)  # + 2 beats of release tail
    melody, chords, bass, drums = (np.zeros(total, np.float32) for _ in range(4))
    rng = np.random.default_rng([plan["piece"], 99])
    notes = []
    root = plan["root"]
    for bar_i, (motif, shift, chord) in enumerate(bars):
        bar_start = bar_i * 4 * beat
        # Chord: triad on the progression degree, an octave above the bass.
        for d in (0, 2, 4):
            pitch = _degree_to_midi(chord + d, root + 12, scale)
            mix_in(chords, render_note(plan["chord_timbre"], pitch, 4 * beat, sample_rate, 0.25), int(bar_start * sample_rate))
        # Bass: root on beats 1 and 3, fifth on 2 and 4.
        for b in range(4):
            pitch = _degree_to_midi(chord + (4 if b % 2 else 0), root - 12 if root > 52 else root, scale)
            mix_in(bass, render_note("bass", pitch, beat * 0.9, sample_rate, 0.6), int((bar_start + b * beat) * sample_rate))
        # Melody: the motif, relative to the chord root, two octaves above the bass.
        t = bar_start
        for beats, step in motif:
            pitch = _degree_to_midi(chord + step + shift + 7, root + 12, scale)
            mix_in(melody, render_note(plan["melody_timbre"], pitch, beats * beat * 0.95, sample_rate, 0.5), int(t * sample_rate))
            notes.append({"pitch": pitch, "start": round(t, 4), "end": round(t + beats * beat, 4)})
            t += beats * beat
        if plan["drums"]:
            for b in range(8):  # eighth notes
                at = int((bar_start + b * beat / 2) * sample_rate)
                mix_in(drums, render_drum("hat", sample_rate, rng), at)
                if b in (0, 4):
                    mix_in(drums, render_drum("kick", sample_rate, rng), at)
                if b in (2, 6):
                    mix_in(drums, render_drum("snare", sample_rate, rng), at)
    mix = melody + 0.8 * chords + 0.9 * bass + 0.7 * drums
    peak = float(np.abs(mix).max()) or 1.0
    gain = 0.8 * float(np.random.default_rng([plan["piece"], 5]).uniform(0.6, 1.0)) / peak
    return (mix * gain).astype(np.float32), notes


def synthesize_music(
    out_dir: str | Path,
    hours: float,
    seed: int = 0,
    sample_rate: int = 16000,
    val_fraction: float = 0.1,
    shard_bytes: float = 64e6,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the music corpus to ``out_dir/train`` and ``out_dir/val``; returns both indexes.

    Every ``round(1 / val_fraction)``-th piece (from piece 0) is held out for validation.
    """
    out_dir = Path(out_dir)
    every = max(2, int(round(1.0 / val_fraction))) if val_fraction > 0 else 0
    writers = {
        split: AudioShardWriter(
            out_dir / split, sample_rate, max_bytes=shard_bytes, resume=False,
            extra_index={"corpus": "music", "split": split, "seed": seed},
        )
        for split in (("train", "val") if every else ("train",))
    }
    target, index = hours * 3600.0, 0
    totals = {"train": 0.0, "val": 0.0}
    shares = {"train": target * (1.0 - val_fraction), "val": target * val_fraction if every else 0.0}
    with tqdm(total=round(target), unit="s", desc="music", disable=not progress) as bar:
        # Piece 0, every, 2*every, ... are held out, so even a tiny corpus has a validation piece.
        while any(totals[s] < shares[s] for s in totals):
            plan = plan_piece(index, seed)
            wave, notes = render_piece(plan, sample_rate)
            split = "val" if every and index % every == 0 else "train"
            meta = {**plan, "source": "procedural-music", "split": split, "notes": notes}
            writers[split].write(f"{split}_piece{index:06d}", wave, meta)
            totals[split] += len(wave) / sample_rate
            bar.update(round(len(wave) / sample_rate))
            index += 1
    return {split: w.close() for split, w in writers.items()}
