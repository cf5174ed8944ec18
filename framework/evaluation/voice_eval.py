"""Train the voice classifier on the corpus' training voices and keep unseen utterances as prompts.

The corpus holds whole voices out for validation, so a classifier of validation voices cannot be
trained without using the very utterances it should judge. Instead: among the TRAIN voices that
have at least two utterances, each voice's last utterances (shard order) are held out; the
classifier learns from the others' segments, its accuracy is measured on the held-out ones, and
the held-out utterances are the prompts of the continuation test (the LMs saw them in training,
the classifier did not).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .utterances import Utterance, by_voice
from .voice_classifier import VoiceClassifier, VoiceClassifierConfig, VoiceFeatures, segments


@dataclass
class VoiceSplit:
    """Training voices' utterances split for the classifier (``train``) and for prompts (``held_out``)."""

    voices: list[str]
    train: dict[str, list[Utterance]] = field(default_factory=dict)
    held_out: dict[str, list[Utterance]] = field(default_factory=dict)


def split_voices(utterances: list[Utterance], max_voices: int = 20, held_out_share: float = 0.25) -> VoiceSplit:
    """The ``max_voices`` voices with most utterances (at least two each), each split train / held out."""
    groups = {v: us for v, us in by_voice(utterances).items() if len(us) >= 2}
    voices = sorted(groups, key=lambda v: (-len(groups[v]), v))[:max_voices]
    split = VoiceSplit(sorted(voices))
    for v in split.voices:
        us = groups[v]
        n_out = max(1, round(len(us) * held_out_share))
        split.train[v], split.held_out[v] = us[:-n_out], us[-n_out:]
    return split


@dataclass
class TrainedVoiceClassifier:
    """The classifier with its features and voice names; ``classify`` maps clips to voice names."""

    features: VoiceFeatures
    model: VoiceClassifier
    voices: list[str]

    def classify(self, waves: list[torch.Tensor]) -> list[str]:
        x = torch.cat([self.features(w.float().cpu().view(1, -1)) for w in waves])  # [N, D]
        return [self.voices[i] for i in self.model.predict(x).tolist()]


def _segment_features(features: VoiceFeatures, groups: dict[str, list[Utterance]], voices: list[str], length: int):
    xs, ys = [], []
    for label, v in enumerate(voices):
        for u in groups.get(v, []):
            segs = segments(torch.from_numpy(u.wave), length)
            xs.extend(features(s[None]) for s in segs)
            ys.extend([label] * len(segs))
    return torch.cat(xs), torch.tensor(ys, dtype=torch.long)


def train_voice_classifier(
    split: VoiceSplit, sample_rate: int, segment_seconds: float, config: VoiceClassifierConfig
) -> tuple[TrainedVoiceClassifier, dict[str, Any]]:
    """Fit on ``segment_seconds`` pieces of the training utterances; report accuracy on the held-out ones."""
    features = VoiceFeatures(sample_rate, config.n_mels, config.frame_ms)
    length = max(1, int(round(segment_seconds * sample_rate)))
    x, y = _segment_features(features, split.train, split.voices, length)
    model = VoiceClassifier(x.shape[1], len(split.voices), config.hidden).fit(x, y, config)
    xt, yt = _segment_features(features, split.held_out, split.voices, length)
    acc = float((model.predict(xt) == yt).float().mean())
    figures = {
        "voices": len(split.voices),
        "segment_seconds": segment_seconds,
        "train_segments": int(len(y)),
        "held_out_segments": int(len(yt)),
        "held_out_accuracy": acc,
        "chance": 1.0 / len(split.voices),
    }
    return TrainedVoiceClassifier(features, model, split.voices), figures
