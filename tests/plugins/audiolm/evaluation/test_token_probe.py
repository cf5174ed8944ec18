"""The phone probe on semantic ids reads phones from ids that carry them and nothing from ids that don't,
and is cached per tokenizer file."""
import numpy as np
import pytest
import torch
from torch import nn

from soundstage.data.utterances import Utterance
from soundstage.plugins.audiolm.evaluation.token_probe import (
    TokenProbeConfig,
    semantic_token_probe,
    train_token_probe,
    token_ids,
)
from soundstage.plugins.audiolm.evaluation.phone_recognizer import phone_error_rate, phone_sequence
from soundstage.plugins.semantic.phone_metrics import frame_phone_labels

from espeak_speech import ENGLISH_VOICES, espeak_utterances

SR = 16000
CONFIG = TokenProbeConfig(channels=128, blocks=4, max_steps=250, batch_seconds=40.0)


class PhoneIdTokenizer(nn.Module):
    """A tokenizer whose ids are the phones themselves (25 Hz, from the corpus' timings), or, with
    ``informative=False``, one id for every frame: the two ends of what a semantic tokenizer can keep."""

    sample_rate, frame_rate, hop_length = SR, 25.0, SR // 25

    def __init__(self, utterances: list[Utterance], informative: bool = True) -> None:
        super().__init__()
        names = sorted({p for u in utterances for p in phone_sequence(u.phonemes)})
        self.vocab_size = len(names) + 2
        index = {p: i + 2 for i, p in enumerate(names)}
        self.entries = []  # (wave head, ids): an utterance is found again after a round trip through shards
        for u in utterances:
            frames = len(u.wave) // self.hop_length
            labels = frame_phone_labels(u.phonemes, frames, self.frame_rate)
            ids = torch.tensor([index.get(str(p).replace(" ", ""), 1) for p in labels]) if informative else torch.ones(frames)
            self.entries.append((torch.from_numpy(np.asarray(u.wave[:4000], dtype=np.float32)), ids.long()))

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        head = wave[0, :4000].float()
        same = [(float((h - head).abs().sum()), ids) for h, ids in self.entries
                if len(h) == len(head) and len(ids) == wave.shape[1] // self.hop_length]
        return min(same, key=lambda e: e[0])[1][None]


@pytest.fixture(scope="module")
def corpus():
    return espeak_utterances(ENGLISH_VOICES[:12], 120, 0, SR), espeak_utterances(ENGLISH_VOICES[20:24], 20, 1, SR)


def _probe_per(tokenizer, train, held_out):
    probe, facts = train_token_probe(tokenizer, train, CONFIG)
    refs = [phone_sequence(u.phonemes) for u in held_out]
    return phone_error_rate(probe.transcribe(token_ids(tokenizer, held_out)), refs), probe, facts


def test_probe_reads_phones_from_ids_that_carry_them(corpus):
    train, held_out = corpus
    oracle = PhoneIdTokenizer(train + held_out)
    per, probe, facts = _probe_per(oracle, train, held_out)
    assert facts["steps"] == CONFIG.max_steps and facts["utterances"] > 100
    assert per < 0.35, per  # the ids are the phones: only the 25 Hz frames and merged repeats lose some
    # an identical copy of the ids scores the same; transcripts of other utterances score near 1
    refs = [phone_sequence(u.phonemes) for u in held_out]
    hyps = probe.transcribe(token_ids(oracle, held_out))
    assert phone_error_rate(probe.transcribe([x.clone() for x in token_ids(oracle, held_out)]), refs) == per
    assert phone_error_rate(hyps[1:] + hyps[:1], refs) > 0.7

    blind_per, _, _ = _probe_per(PhoneIdTokenizer(train + held_out, informative=False), train, held_out)
    assert blind_per > 0.85, blind_per  # constant ids: at best the most frequent phones


def test_probe_is_cached_per_tokenizer_file(corpus, tmp_path):
    train, held_out = corpus
    from soundstage.data.shard_writer import AudioShardWriter

    writer = AudioShardWriter(tmp_path / "train", SR)
    for u in train[:40]:
        writer.write(u.key, u.wave, {**u.meta, "sample_rate": SR, "duration": len(u.wave) / SR})
    writer.close()
    shards = str(tmp_path / "train")
    tokenizer = PhoneIdTokenizer(train + held_out)
    file = tmp_path / "tokenizer.safetensors"
    file.write_bytes(b"version 1")
    cfg = TokenProbeConfig(channels=64, blocks=2, max_steps=20, batch_seconds=20.0)
    first = semantic_token_probe(tokenizer, file, shards, held_out, cfg, tmp_path / "cache", log=lambda s: None)
    again = semantic_token_probe(tokenizer, file, shards, held_out, cfg, tmp_path / "cache", log=lambda s: None)
    assert first["per"] == again["per"] and first["cache_dir"] == again["cache_dir"]
    file.write_bytes(b"version 2")  # another tokenizer: another probe
    other = semantic_token_probe(tokenizer, file, shards, held_out, cfg, tmp_path / "cache", log=lambda s: None)
    assert other["cache_dir"] != first["cache_dir"]
