"""The embedded speech corpus: sentences read by many voices, with phoneme timings.

Two engines read it. ``espeak`` (the default): a "voice" is an espeak language voice plus a
variant (``en-us+f3``). ``kokoro``: the natural-voice engine of ``data/natural_voice`` (Kokoro-82M
reading espeak-ng's phonemes; the ``natural`` extra), whose voices are its five styles and seeded
blends. Either way the voice is the speaker identity, so the validation split holds out whole
voices. Every utterance's choices (voice, sentence, rate, pitch) come from an RNG seeded by
``(seed, index)``, so the corpus is the same for a seed whatever the number of worker processes.
"""
from __future__ import annotations

import difflib
import multiprocessing as mp
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Sequence, TypeVar

import numpy as np
from tqdm import tqdm

from soundstage.errors import SoundstageError
from soundstage.recipe_schema import SPEECH_ENGINES as ENGINES  # espeak: formant synthesis; kokoro: natural voices

from .audio_io import resample
from .shard_writer import AudioShardWriter, sanitize_key

MAX_SKIPPED_IN_A_ROW = 200  # an engine that can read none of the planned utterances stops with an error
_V = TypeVar("_V")

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


def check_engine(engine: str) -> str:
    """``engine`` if it is one of :data:`ENGINES`, else a one-line ``ValueError`` with the closest name."""
    if engine not in ENGINES:
        close = difflib.get_close_matches(str(engine), ENGINES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown speech engine {engine!r}: one of {', '.join(ENGINES)}{hint}")
    return engine


def engine_voices(engine: str) -> list:
    """The speakers of ``engine`` in a fixed order (kokoro: checks the natural extra is installed)."""
    if check_engine(engine) == "espeak":
        return all_voices()
    from .natural_voice.model import check_installed
    from .natural_voice.voices import all_natural_voices

    check_installed()
    return all_natural_voices()


def split_voices(voices: Sequence[_V], val_fraction: float, seed: int) -> tuple[list[_V], list[_V]]:
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


def choose_voice_and_text(rng: np.random.Generator, voices: list[Any]) -> tuple[Any, str]:
    """A voice (anything with a ``language``) and a text in its language: one sentence, or two in one breath group."""
    voice = voices[int(rng.integers(len(voices)))]
    pool = sentences(voice.language)
    text = pool[int(rng.integers(len(pool)))]
    if rng.random() < 0.3:  # some longer utterances: two sentences in one breath group
        text = f"{text} {pool[int(rng.integers(len(pool)))]}"
    return voice, text


def plan_utterance(index: int, seed: int, voices: list[Voice]) -> dict[str, Any]:
    """The deterministic choices for utterance ``index``: voice, sentence, rate, pitch."""
    rng = np.random.default_rng([seed, index])
    voice, text = choose_voice_and_text(rng, voices)
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


def _plan(engine: str, index: int, seed: int, voices: list) -> dict[str, Any]:
    if engine == "kokoro":
        from .natural_voice.synth import plan_natural

        return plan_natural(index, seed, voices)
    return plan_utterance(index, seed, voices)


def _synth_job(args: tuple[str, dict[str, Any], int]) -> tuple[np.ndarray | None, dict[str, Any]]:
    engine, plan, sample_rate = args
    if engine == "kokoro":
        from .natural_voice.synth import synth_natural

        return synth_natural(plan, sample_rate)  # wave None: an utterance Kokoro cannot read (meta says why)
    return synth_utterance(plan, sample_rate)


def synthesize_speech(
    out_dir: str | Path,
    hours: float,
    seed: int = 0,
    sample_rate: int = 16000,
    val_fraction: float = 0.1,
    num_workers: int = 0,
    shard_bytes: float = 64e6,
    progress: bool = True,
    engine: str = "espeak",
) -> dict[str, Any]:
    """Write the speech corpus to ``out_dir/train`` and ``out_dir/val`` shards; returns both indexes.

    ``hours`` is the total duration; about ``val_fraction`` of it is read by held-out voices.
    ``engine`` is ``"espeak"`` or ``"kokoro"`` (:data:`ENGINES`).
    """
    out_dir = Path(out_dir)
    train_voices, val_voices = split_voices(engine_voices(engine), val_fraction, seed)
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
        if engine != "espeak":  # the espeak index stays as it was
            writer.extra_index["engine"] = engine
        skipped = _write_split(writer, engine, voices, split, split_seed, target, sample_rate, num_workers, progress)
        if skipped:
            writer.extra_index["skipped_utterances"] = skipped
        indexes[split] = writer.close()
    return indexes


def _write_split(writer, engine, voices, split, seed, target, sample_rate, num_workers, progress) -> dict:
    """Fill one split; returns the planned utterances the engine could not read, by language and reason."""
    # Utterance i is planned from (seed, i) whatever the batch, so in-process batches can be of one (no extras).
    total, index, batch = 0.0, 0, 4 * num_workers if num_workers > 0 else 1
    skipped: dict[str, Counter] = {}
    in_a_row = 0
    pool = mp.get_context("spawn").Pool(num_workers) if num_workers > 0 else None
    bar = tqdm(total=round(target), unit="s", desc=f"speech {split}", disable=not progress)
    try:
        while total < target:
            jobs = [(engine, _plan(engine, index + i, seed, voices), sample_rate) for i in range(batch)]
            results = pool.map(_synth_job, jobs) if pool else [_synth_job(j) for j in jobs]
            for i, (wave, meta) in enumerate(results):
                if total >= target:
                    break
                if wave is None:
                    skipped.setdefault(meta["language"], Counter())[meta["skipped"]] += 1
                    in_a_row += 1
                    if in_a_row >= MAX_SKIPPED_IN_A_ROW:
                        raise SoundstageError(f"speech {split}: the {engine} engine could read none of "
                                              f"{in_a_row} planned utterances in a row (last: {meta['skipped']})")
                    continue
                in_a_row = 0
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
    return {lang: {"count": sum(c.values()), "reasons": dict(c)} for lang, c in sorted(skipped.items())}
