"""Real espeak-ng speech with phoneme timings for the evaluation's tests (shared helper, not a test)."""
import numpy as np

from soundstage.data.speech_corpus import all_voices, plan_utterance, synth_utterance
from soundstage.data.utterances import Utterance

# One English voice family, so a minute of CPU training sees every phone often enough.
ENGLISH_VOICES = [v for v in all_voices() if v.name.split("+")[0] in ("en-us", "en")]


def espeak_utterances(voices, n: int, seed: int, sample_rate: int) -> list[Utterance]:
    """``n`` corpus sentences read by ``voices`` in turn (planned from ``seed``)."""
    out = []
    for i in range(n):
        wave, meta = synth_utterance(plan_utterance(i, seed, voices), sample_rate)
        out.append(Utterance(f"u{seed}_{i:03d}", wave.astype(np.float32), meta))
    return out
