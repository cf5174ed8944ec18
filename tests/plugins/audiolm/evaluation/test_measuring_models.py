"""The evaluation's measuring models on real espeak-ng speech: a phone recognizer that reads held-out
voices (and not noise), a speaker model that tells voices it never saw apart, and their cache."""
import numpy as np
import pytest
import torch

from soundstage.plugins.audiolm.evaluation.eval_models import load_or_train, undertrained
from soundstage.plugins.audiolm.evaluation.phone_recognizer import PhoneRecognizerConfig, phone_error_rate, phone_sequence
from soundstage.plugins.audiolm.evaluation.phone_training import train_phone_recognizer
from soundstage.plugins.audiolm.evaluation.speaker_embedding import SpeakerEmbeddingConfig
from soundstage.plugins.audiolm.evaluation.speaker_training import train_speaker_embedding
from soundstage.data.utterances import by_voice

from espeak_speech import ENGLISH_VOICES, espeak_utterances

SR = 16000
TRAIN_VOICES, HELD_OUT_VOICES = ENGLISH_VOICES[:12], ENGLISH_VOICES[20:24]


@pytest.fixture(scope="module")
def corpus():
    return espeak_utterances(TRAIN_VOICES, 160, 0, SR), espeak_utterances(HELD_OUT_VOICES, 24, 1, SR)


@pytest.fixture(scope="module")
def recognizer(corpus):
    cfg = PhoneRecognizerConfig(channels=128, blocks=4, max_steps=300, batch_seconds=40.0)
    model, facts = train_phone_recognizer(corpus[0], SR, cfg)
    return model, facts


def test_phone_recognizer_reads_held_out_voices(corpus, recognizer):
    model, facts = recognizer
    held_out = corpus[1]
    refs = [phone_sequence(u.phonemes) for u in held_out]
    hyps = model.transcribe([torch.from_numpy(u.wave) for u in held_out])
    per = phone_error_rate(hyps, refs)
    # 300 steps on ~8 minutes of speech (the 2-hour corpus' 600-step recognizer reads 0.09: docs/evaluation.md)
    assert per < 0.5, per
    assert facts["steps"] > 0 and facts["phones"] > 20
    # a copy of the audio scores exactly as the original; noise and transcripts of other clips score near 1
    copies = model.transcribe([torch.from_numpy(u.wave.copy()) for u in held_out])
    assert phone_error_rate(copies, refs) == per
    rng = np.random.default_rng(0)
    noise = model.transcribe([torch.from_numpy((0.1 * rng.standard_normal(len(u.wave))).astype(np.float32)) for u in held_out])
    assert phone_error_rate(noise, refs) > 0.9
    assert phone_error_rate(hyps[1:] + hyps[:1], refs) > 0.8


def test_speaker_model_separates_unseen_voices(corpus):
    train, held_out = corpus
    cfg = SpeakerEmbeddingConfig(channels=96, blocks=3, max_steps=300)
    model, facts = train_speaker_embedding(train, SR, cfg)
    assert facts["voices"] == len({u.voice for u in train})
    groups = by_voice(held_out)
    voices = sorted(groups)
    same = model.similarity([torch.from_numpy(groups[v][0].wave) for v in voices],
                            [torch.from_numpy(groups[v][1].wave) for v in voices])
    diff = model.similarity([torch.from_numpy(groups[v][0].wave) for v in voices],
                            [torch.from_numpy(groups[voices[(i + 1) % len(voices)]][1].wave) for i, v in enumerate(voices)])
    assert float(same.mean()) > float(diff.mean()) + 0.1, (same, diff)


def test_measuring_models_are_cached_per_corpus(tmp_path, corpus):
    from soundstage.data.shard_writer import AudioShardWriter

    writer = AudioShardWriter(tmp_path / "train", SR)
    for u in corpus[0][:12]:
        writer.write(u.key, u.wave, {**u.meta, "sample_rate": SR, "duration": len(u.wave) / SR})
    writer.close()
    shards = str(tmp_path / "train")
    tiny_p = PhoneRecognizerConfig(channels=32, blocks=1, max_steps=2)
    tiny_s = SpeakerEmbeddingConfig(channels=32, blocks=1, max_steps=2)
    logs = []
    first = load_or_train(shards, SR, tiny_p, tiny_s, tmp_path / "cache", log=logs.append)
    assert first.phones is not None and first.speaker is not None and any("training the phone" in m for m in logs)
    logs.clear()
    again = load_or_train(shards, SR, tiny_p, tiny_s, tmp_path / "cache", log=logs.append)
    assert not any("training" in m for m in logs)  # loaded from the cache
    for a, b in zip(first.phones.state_dict().values(), again.phones.state_dict().values()):
        assert torch.equal(a, b)
    # another corpus (one more utterance) is another cache entry
    writer = AudioShardWriter(tmp_path / "train2", SR)
    for u in corpus[0][:13]:
        writer.write(u.key, u.wave, {**u.meta, "sample_rate": SR, "duration": len(u.wave) / SR})
    writer.close()
    logs.clear()
    load_or_train(str(tmp_path / "train2"), SR, tiny_p, tiny_s, tmp_path / "cache", log=logs.append)
    assert any("training the phone" in m for m in logs)


def test_a_measuring_model_its_time_guard_stopped_is_named_in_the_notes():
    phones, speaker = PhoneRecognizerConfig(max_steps=600, max_minutes=60), SpeakerEmbeddingConfig(max_steps=500)
    facts = {"phones": {"steps": 323}, "speaker": {"steps": 500}, "cache_dir": "/cache/eval-models-x"}
    notes = undertrained(facts, phones, speaker)
    assert len(notes) == 1 and "phone recognizer stopped at 323 of 600 steps" in notes[0] and "/cache/eval-models-x" in notes[0]
    assert undertrained(facts | {"phones": {"steps": 600}}, phones, speaker) == []
