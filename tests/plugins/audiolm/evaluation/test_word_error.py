"""pocketsphinx word error rate: a copy scores as the original, noise scores near 1."""
import numpy as np
import pytest

pytest.importorskip("pocketsphinx")

from soundstage.data.speech_corpus import all_voices, synth_utterance
from soundstage.data.utterances import Utterance
from soundstage.plugins.audiolm.evaluation.word_error import WordRecognizer, english_texts, error_rate, words

TEXT = "The wheel of the cart was stuck in the mud."


def _speech(sr: int) -> np.ndarray:
    voice = next(v for v in all_voices() if v.name == "en-us+m1")
    plan = {"voice": voice.name, "language": "en", "text": TEXT, "rate": voice.base_rate, "pitch": voice.base_pitch,
            "synth_seed": 0}
    return synth_utterance(plan, sr)[0]


def test_a_copy_scores_as_the_original_and_noise_near_one():
    sr = 24000  # resampled to the recognizer's 16 kHz
    rec, wave = WordRecognizer(sr), _speech(24000)
    ref = [words(TEXT)]
    original = error_rate([rec.transcribe(wave)], ref)
    assert error_rate([rec.transcribe(wave.copy())], ref) == original
    noise = np.random.default_rng(0).normal(0, 0.1, len(wave)).astype(np.float32)
    assert error_rate([rec.transcribe(noise)], ref) >= 0.8  # the espeak original itself may score high (a robotic voice)


def test_only_english_or_unlabelled_texts_are_scored():
    w = np.zeros(10, np.float32)
    us = [Utterance("a", w, {"text": "Hello there.", "language": "en"}), Utterance("b", w, {"text": "Bonjour.", "language": "fr"}),
          Utterance("c", w, {"text": "my own data"}), Utterance("d", w, {"language": "en"})]
    assert [u.key for u in english_texts(us, 5)] == ["a", "c"] and len(english_texts(us, 1)) == 1


def test_a_transcript_does_not_depend_on_what_was_heard_before():
    rec, wave = WordRecognizer(16000), 0.03 * _speech(16000)
    first = rec.transcribe(wave)
    noise = np.random.default_rng(1).normal(0, 0.3, 3 * 16000).astype(np.float32)
    rec.transcribe(noise), rec.transcribe(noise)  # a decoder shared across utterances reads `wave` differently after this
    assert rec.transcribe(wave) == first
