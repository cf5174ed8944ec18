"""One natural-voice utterance: plan (voice, sentence, speed, pitch) -> Kokoro audio with phoneme timings.

The timings are the model's own: Kokoro expands each input symbol to a predicted number of
frames (600 samples at 24 kHz each), which the extended graph returns, so a phoneme starts at the
first frame of its first symbol, less the decoder's constant lead (``LEAD_FRAMES``). Spaces and punctuation between words belong to the phoneme before
them, as pauses do in the espeak corpus: a phoneme ends where the next starts, the last at the end.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .model import FRAME_SAMPLES, LEAD_FRAMES, MAX_TOKENS, SAMPLE_RATE, get_kokoro
from .phonemes import Phonemized, phonemize
from .voices import NaturalVoice

SPEED_JITTER = 0.05  # per utterance, relative to the speaker's own speed
PITCH_JITTER = 0.03


def plan_natural(index: int, seed: int, voices: list[NaturalVoice]) -> dict[str, Any]:
    """The deterministic choices for utterance ``index``: voice, sentence, speed, pitch."""
    from soundstage.data.speech_corpus import choose_voice_and_text

    rng = np.random.default_rng([seed, index])
    voice, text = choose_voice_and_text(rng, voices)
    return {
        "voice": voice.name,
        "language": voice.language,
        "accent": voice.accent,
        "text": text,
        "speed": round(voice.speed * (1 + rng.uniform(-SPEED_JITTER, SPEED_JITTER)), 4),
        "pitch": round(voice.pitch * (1 + rng.uniform(-PITCH_JITTER, PITCH_JITTER)), 4),
        "style_weights": list(voice.weights),
    }


def skip_reason(ph: Phonemized) -> str | None:
    """Why Kokoro cannot read this utterance (symbols outside its vocabulary, too long), or None."""
    if ph.missing:
        return "phonemes not in Kokoro's vocabulary: " + " ".join(sorted(ph.missing))
    if not ph.phonemes:
        return "no phonemes"
    if len(ph.symbols) > MAX_TOKENS - 2:
        return f"longer than {MAX_TOKENS - 2} Kokoro symbols"
    return None


def phoneme_spans(ph: Phonemized, durations: np.ndarray, total_seconds: float) -> list[dict]:
    """{"phoneme", "start", "end"} in seconds from the per-symbol frames (``durations[0]``: the start pad)."""
    frame_starts = np.concatenate([[0], np.cumsum(durations)])  # symbol k starts at frame_starts[k + 1]
    starts = [max(0.0, float(frame_starts[a + 1]) - LEAD_FRAMES) * FRAME_SAMPLES / SAMPLE_RATE
              for a, _ in ph.token_ranges]
    spans = []
    for i, (name, start) in enumerate(zip(ph.phonemes, starts)):
        end = starts[i + 1] if i + 1 < len(starts) else total_seconds
        spans.append({"phoneme": name, "start": round(start, 4), "end": round(max(end, start), 4)})
    return spans


def synth_natural(plan: dict[str, Any], sample_rate: int) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Synthesise one planned utterance -> (float32 [T] at ``sample_rate``, JSON metadata).

    The wave is None (and the metadata has ``skipped``: the reason) when Kokoro cannot read it.
    """
    from soundstage.data.audio_io import resample

    from .voices import mix_styles

    kokoro = get_kokoro()
    ph = phonemize(plan["text"], plan["accent"], kokoro.vocab)
    reason = skip_reason(ph)
    if reason:
        return None, {**plan, "skipped": reason}
    style = mix_styles(plan["style_weights"], kokoro.styles)
    out = kokoro([kokoro.vocab[c] for c in ph.symbols], style, plan["speed"], plan["pitch"])
    total = len(out.audio) / SAMPLE_RATE
    meta = {**plan, "source": "kokoro-82m", "synth_sample_rate": SAMPLE_RATE, "kokoro_phonemes": ph.symbols,
            "phonemes": phoneme_spans(ph, out.durations, total)}
    return resample(out.audio, SAMPLE_RATE, sample_rate), meta
