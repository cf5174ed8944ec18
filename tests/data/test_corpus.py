"""The embedded corpora: deterministic for a seed, phoneme timings present, cached once."""
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundstage.data.corpus import prepare_corpus
from soundstage.data.espeak import get_espeak
from soundstage.data.music_corpus import plan_piece, render_piece
from soundstage.data.speech_corpus import all_voices, split_voices, synthesize_speech
from soundstage.recipe_schema import DataConfig


def _members(tar_path: Path) -> dict[str, bytes]:
    with tarfile.open(tar_path) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers()}


def test_espeak_reports_phonemes_with_times():
    utt = get_espeak().synth("The quiet river bends past the old mill.", "en-us+f3", rate=170, pitch=50)
    assert utt.sample_rate == 22050 and len(utt.wave) > utt.sample_rate  # over a second of speech
    assert np.abs(utt.wave).max() > 0.05
    starts = [p["start"] for p in utt.phonemes]
    assert len(utt.phonemes) > 15 and starts == sorted(starts)
    assert all(p["end"] >= p["start"] for p in utt.phonemes)
    assert utt.phonemes[-1]["end"] <= len(utt.wave) / utt.sample_rate + 1e-6


def test_speech_corpus_is_deterministic_and_resampled(tmp_path):
    a = synthesize_speech(tmp_path / "a", hours=0.003, seed=3, sample_rate=16000, progress=False)
    synthesize_speech(tmp_path / "b", hours=0.003, seed=3, sample_rate=16000, progress=False)
    synthesize_speech(tmp_path / "c", hours=0.003, seed=4, sample_rate=16000, progress=False)
    synthesize_speech(tmp_path / "p", hours=0.003, seed=3, sample_rate=16000, progress=False, num_workers=2)
    for split in ("train", "val"):
        assert a[split]["num_samples"] >= 1
        tar_a = _members(tmp_path / "a" / split / "shard-000000.tar")
        assert tar_a == _members(tmp_path / "b" / split / "shard-000000.tar")  # byte-identical
        assert tar_a == _members(tmp_path / "p" / split / "shard-000000.tar")  # parallel workers: the same bytes
    assert _members(tmp_path / "a/train/shard-000000.tar") != _members(tmp_path / "c/train/shard-000000.tar")

    members = _members(tmp_path / "a/train/shard-000000.tar")
    key = sorted(k for k in members if k.endswith(".json"))[0][: -len(".json")]
    meta = json.loads(members[key + ".json"])
    wave, sr = sf.read(io.BytesIO(members[key + ".flac"]))
    assert sr == 16000 and meta["sample_rate"] == 16000 and meta["synth_sample_rate"] == 22050
    assert abs(len(wave) / sr - meta["duration"]) < 1e-3
    assert meta["text"] and meta["voice"] and meta["phonemes"]
    assert {"phoneme", "start", "end"} <= set(meta["phonemes"][0])
    assert meta["phonemes"][-1]["end"] <= meta["duration"] + 0.05


def test_validation_voices_are_held_out():
    train, val = split_voices(all_voices(), 0.1, seed=0)
    assert val and not {v.name for v in train} & {v.name for v in val}
    assert len(all_voices()) >= 100 and len({v.language for v in all_voices()}) >= 4


def test_music_pieces_repeat_their_motif():
    plan = plan_piece(2, seed=0)
    wave, notes = render_piece(plan, 16000)
    again, _ = render_piece(plan_piece(2, seed=0), 16000)
    assert np.array_equal(wave, again) and np.isfinite(wave).all() and np.abs(wave).max() <= 1.0
    # Form A A' B A over the progression: the first and last sections play the same notes.
    per_section = len(plan["motif_a"]) * len(plan["progression"])
    pitches = [n["pitch"] for n in notes]
    assert pitches[:per_section] == pitches[-per_section:]
    assert pitches[:per_section] != pitches[per_section : 2 * per_section]  # A' is transposed


def test_prepare_corpus_generates_once(tmp_path):
    cfg = DataConfig(corpus="music", hours=0.005, sample_rate=8000, cache_dir=str(tmp_path / "cache"))
    train, val = prepare_corpus(cfg, progress=False)
    assert Path(train).exists() and Path(val).exists() and train != val
    digest = hashlib.sha256(Path(train).read_bytes()).hexdigest()
    assert prepare_corpus(cfg, progress=False) == (train, val)
    assert hashlib.sha256(Path(train).read_bytes()).hexdigest() == digest
    assert len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 1  # no temp dir left


def test_a_corpus_without_a_split_fails_clearly_and_leaves_no_cache_entry(tmp_path):
    from soundstage.errors import SoundstageError

    cfg = DataConfig(corpus="music", hours=0.003, sample_rate=8000, val_fraction=0.0, cache_dir=str(tmp_path))
    with pytest.raises(SoundstageError, match=r"music corpus of data.hours=0.003 has no val samples; raise data.hours"):
        prepare_corpus(cfg, progress=False)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
