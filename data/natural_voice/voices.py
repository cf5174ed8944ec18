"""The natural voices: Kokoro's five style packs and seeded blends of them, each a named speaker.

A style pack is [510, 256] (one style vector per input length). A blend is a convex mixture of the
five packs (Dirichlet weights, concentrations :data:`STYLE_ALPHA`), with its own speaking rate and pitch factor, all drawn from an RNG
seeded by the voice's name, so a name always denotes the same voice. A voice also has an accent
(the espeak voice that phonemizes its text), so, as in the espeak corpus, a speaker speaks one
language and the validation split can hold out whole speakers.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")  # as shipped (jm_: male)
# Blended speakers per accent (the five pure styles read American English besides these).
BLENDS_PER_ACCENT = {"en-us": 20, "en-gb": 15, "fr": 8, "es": 8, "de": 8}
# Dirichlet concentration of each style in the blends: 0.8 x (1 - the style's pocketsphinx WER reading 20 US
# English sentences: 0.91, 0.31, 0.41, 0.71, 0.26; docs/natural_voice.md). The shipped voices are Japanese
# speakers; those that read English poorly seldom lead a blend. All < 1: most blends lean on one or two styles.
STYLE_ALPHA = (0.08, 0.55, 0.47, 0.23, 0.6)
SPEED_RANGE = (0.85, 1.15)  # a speaker's speaking-rate factor (Kokoro's ``speed``)
PITCH_RANGE = (0.85, 1.15)  # a speaker's F0 factor (the ``pitch`` input added to the graph)


@dataclass(frozen=True)
class NaturalVoice:
    """One natural-voice speaker."""

    name: str
    language: str  # text language: the sentences of data/texts/<language>.txt
    accent: str  # a key of phonemes.ACCENTS
    weights: tuple[float, ...]  # convex weights over STYLES
    speed: float
    pitch: float

    def style(self, packs: dict[str, np.ndarray]) -> np.ndarray:
        """The voice's style pack [510, 256]."""
        return mix_styles(self.weights, packs)


def mix_styles(weights, packs: dict[str, np.ndarray]) -> np.ndarray:
    """The convex mixture of the five style packs [510, 256] with ``weights`` (one per STYLES entry)."""
    return sum(w * packs[s] for w, s in zip(weights, STYLES) if w > 0).astype(np.float32)


def name_seed(name: str) -> int:
    """A stable 63-bit seed from a voice name (not Python's salted ``hash``)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little") >> 1


def blend(name: str, language: str, accent: str, seed: int | None = None) -> NaturalVoice:
    """A blended voice: weights, speed and pitch from ``seed`` (default: from ``name``)."""
    rng = np.random.default_rng(name_seed(name) if seed is None else seed)
    weights = rng.dirichlet(STYLE_ALPHA)
    speed = rng.uniform(*SPEED_RANGE)
    pitch = rng.uniform(*PITCH_RANGE)
    return NaturalVoice(name, language, accent, tuple(round(float(w), 6) for w in weights),
                        round(float(speed), 4), round(float(pitch), 4))


def pure(style: str, accent: str = "en-us") -> NaturalVoice:
    """One of the five shipped styles as it is (speed and pitch 1)."""
    from .phonemes import ACCENTS

    weights = tuple(1.0 if s == style else 0.0 for s in STYLES)
    return NaturalVoice(f"kokoro-{accent}-{style}", ACCENTS[accent][0], accent, weights, 1.0, 1.0)


def all_natural_voices() -> list[NaturalVoice]:
    """Every natural-voice speaker, in a fixed order: the five styles, then the blends of each accent."""
    from .phonemes import ACCENTS

    voices = [pure(s) for s in STYLES]
    for accent, n in BLENDS_PER_ACCENT.items():
        language = ACCENTS[accent][0]
        voices += [blend(f"kokoro-{accent}-blend{i:02d}", language, accent) for i in range(n)]
    return voices
