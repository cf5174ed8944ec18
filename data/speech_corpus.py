"""The embedded speech corpus: sentences read by many espeak-ng voices, with phoneme timings.

A "voice" is an espeak language voice plus a variant (``en-us+f3``); it is the speaker
identity, so the validation split holds out whole voices. Every utterance's choices (voice,
sentence, rate, pitch) come from an RNG seeded by ``(seed, index)``, so the corpus is the same
for a seed whatever the number of worker processes.
"""
from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .audio_io import resample
from .shard_writer import AudioShardWriter, sanitize_key

# espeak language voices per text language (the sentences of data/texts/<lang>.txt).
LANGUAGE_VOICES: dict[str, tuple[str, ...]] = {
    "en": ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan"),
    "de": ("de",),
    "fr": ("fr", "fr-be"),
    "es": ("es", "es-419"),
}
# Variants change the formants, pitch and breathiness: distinct "speakers" on one language voice.
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt3", "adam", "linda")


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: espeak voice name (``base+variant``) and its text language."""

    name: str
    language: str
    base_rate: int  # words per minute
    base_pitch: int  # 0..100


def all_voices() -> list[Voice]:
    """Every (language voice x variant) speaker, in a fixed order, with stable base rate/pitch."""
    voices = []
    for lang, bases in LANGUAGE_VOICES.items():
        for base in bases:
            for variant in VARIANTS:
                name = f"{base}+{variant}"
                # Stable per-voice traits from the name (not the seed): a speaker keeps its manner.
                h = np.random.default_rng(sum(name.encode()) * 7919 + len(name))
                voices.append(Voice(name, lang, int(h.integers(140, 200)), int(h.integers(30, 75))))
    return voices


def split_voices(voices: list[Voice], val_fraction: float, seed: int) -> tuple[list[Voice], list[Voice]]:
    """Hold out whole voices for validation (at least one when ``val_fraction > 0``)."""
    order = np.random.default_rng(seed).permutation(len(voices))
    n_val = 0 if val_fraction <= 0 else max(1, int(round(val_fraction * len(voices))))
    val = [voices[i] for i in sorted(order[:n_val])]
    train = [voices[i] for i in sorted(order[n_val:])]
    return train, val


@lru_cache(maxsize=None)
def sentences(language: str) -> tuple[str, ...]:
    """The shipped sentences of ``language`` (data/texts/<language>.txt), comments skipped."""
    text = resources.files("soundstage.data").joinpath("texts", f"{language}.txt").read_text("utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def plan_utterance(index: int, seed: int, voices: list[Voice]) -> dict[str, Any]:
    """The deterministic choices for utterance ``index``: voice, sentence, rate, pitch."""
    rng = np.random.default_rng([seed, index])
    voice = voices[int(rng.integers(len(voices)))]
    pool = sentences(voice.language)
    text = pool[int(rng.integers(len(pool)))]
    if rng.random() < 0.3:  # some longer utterances: two sentences in one breath group
        text = f"{text} {pool[int(rng.integers(len(pool)))]}"
    return {
        "voice": voice.name,
        "language": voice.language,
        "text": text,
        "rate": int(np.clip(voice.base_rate + rng.integers(-20, 21), 80, 450)),
        "pitch": int(np.clip(voice.base_pitch + rng.integers(-8, 9), 0, 100)),
        "synth_seed": int(rng.integers(2**31 - 1)),
    }


def synth_utterance(plan: dict[str, Any], sample_rate: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Synthesise one planned utterance -> (float32 [T] at ``sample_rate``, JSON metadata)."""
    from .espeak import get_espeak

    utt = get_espeak().synth(
        plan["text"], plan["voice"], rate=plan["rate"], pitch=plan["pitch"], seed=plan["synth_seed"]
    )
    wave = resample(utt.wave, utt.sample_rate, sample_rate)  # espeak renders at 22050 Hz
    meta = {**plan, "source": "espeak-ng", "synth_sample_rate": utt.sample_rate, "phonemes": utt.phonemes}
    return wave, meta


def _synth_job(args: tuple[dict[str, Any], int]) -> tuple[np.ndarray, dict[str, Any]]:
    return synth_utterance(*args)


def synthesize_speech(
    out_dir: str | Path,
    hours: float,
    seed: int = 0,
    sample_rate: int = 16000,
    val_fraction: float = 0.1,
    num_workers: int = 0,
    shard_bytes: float = 64e6,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the speech corpus to ``out_dir/train`` and ``out_dir/val`` shards; returns both indexes.

    ``hours`` is the total duration; about ``val_fraction`` of it is read by held-out voices.
    """
    out_dir = Path(out_dir)
    train_voices, val_voices = split_voices(all_voices(), val_fraction, seed)
    splits = {"train": (train_voices, 1.0 - val_fraction), "val": (val_voices, val_fraction)}
    indexes = {}
    for split, (voices, share) in splits.items():
        target = hours * 3600.0 * share
        if not voices or target <= 0:
            continue
        split_seed = seed * 2 + (split == "val")
        writer = AudioShardWriter(
            out_dir / split, sample_rate, max_bytes=shard_bytes, resume=False,
            extra_index={"corpus": "speech", "split": split, "seed": seed, "voices": [v.name for v in voices]},
        )
        _write_split(writer, voices, split, split_seed, target, sample_rate, num_workers, progress)
        indexes[split] = writer.close()
    return indexes


def _write_split(writer, voices, split, seed, target, sample_rate, num_workers, progress) -> None:
    total, index, batch = 0.0, 0, max(8, 4 * max(num_workers, 1))
    pool = mp.get_context("spawn").Pool(num_workers) if num_workers > 0 else None
    bar = tqdm(total=round(target), unit="s", desc=f"speech {split}", disable=not progress)
    try:
        while total < target:
            jobs = [(plan_utterance(index + i, seed, voices), sample_rate) for i in range(batch)]
            results = pool.map(_synth_job, jobs) if pool else [_synth_job(j) for j in jobs]
            for i, (wave, meta) in enumerate(results):
                if total >= target:
                    break
                key = sanitize_key(f"{split}_{index + i:07d}_{meta['voice']}")
                writer.write(key, wave, {**meta, "split": split})
                total += len(wave) / sample_rate
                bar.update(round(len(wave) / sample_rate))
            index += batch
    finally:
        bar.close()
        if pool:
            pool.close()
            pool.join()
