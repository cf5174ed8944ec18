"""The evaluation-time voice classifier: learns separable synthetic "voices", and its data split keeps
each voice's held-out utterances away from training."""
import numpy as np
import torch

from soundstage.evaluation.utterances import Utterance
from soundstage.evaluation.voice_classifier import VoiceClassifier, VoiceClassifierConfig, VoiceFeatures, segments
from soundstage.evaluation.voice_eval import split_voices, train_voice_classifier

SR = 8000


def test_classifier_separates_gaussian_clusters_and_generalises():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 10, generator=g) * 3
    y = torch.arange(4).repeat_interleave(30)
    x = centres[y] + torch.randn(len(y), 10, generator=g)
    yt = torch.arange(4).repeat_interleave(10)
    xt = centres[yt] + torch.randn(len(yt), 10, generator=g)
    for hidden in (0, 32):  # logistic regression and the MLP
        model = VoiceClassifier(10, 4, hidden).fit(x, y, VoiceClassifierConfig(steps=200, seed=1))
        assert (model.predict(xt) == yt).float().mean() > 0.9
    # re-fitting with the same seed gives the same model
    a = VoiceClassifier(10, 4, 16).fit(x, y, VoiceClassifierConfig(steps=20, seed=3))
    b = VoiceClassifier(10, 4, 16).fit(x, y, VoiceClassifierConfig(steps=20, seed=3))
    assert torch.equal(a(xt), b(xt))


def _tone_voice(f0: float, seed: int, seconds: float = 2.0) -> np.ndarray:
    """A "voice": a harmonic tone at its own pitch with a voice-specific spectral tilt, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f = f0 * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(1, 3) * t))
    phase = 2 * np.pi * np.cumsum(f) / SR
    tilt = 1.0 if f0 < 200 else 0.3
    wave = sum(np.sin(k * phase) / k**tilt for k in range(1, 8))
    return (0.1 * wave + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def test_split_and_training_on_synthetic_voices():
    pitches = {"low": 110.0, "mid": 180.0, "high": 300.0}
    utts = [Utterance(f"{v}_{i}", _tone_voice(f0, seed=i * 7 + len(v)), {"voice": v})
            for i in range(4) for v, f0 in pitches.items()]
    utts.append(Utterance("lonely_0", _tone_voice(500.0, 99), {"voice": "lonely"}))  # one utterance: not usable
    split = split_voices(utts, max_voices=10)
    assert split.voices == sorted(pitches)
    for v in split.voices:
        assert len(split.held_out[v]) == 1 and len(split.train[v]) == 3
        assert not {u.key for u in split.train[v]} & {u.key for u in split.held_out[v]}
    clf, figures = train_voice_classifier(split, SR, segment_seconds=0.5, config=VoiceClassifierConfig(steps=150))
    assert figures["voices"] == 3 and figures["train_segments"] == 3 * 3 * 4 and figures["held_out_segments"] == 3 * 4
    assert figures["held_out_accuracy"] > 0.9 and abs(figures["chance"] - 1 / 3) < 1e-9
    assert clf.classify([torch.from_numpy(_tone_voice(300.0, 1234))]) == ["high"]


def test_features_and_segments_shapes():
    feats = VoiceFeatures(SR, n_mels=20)(torch.randn(3, SR))
    assert feats.shape == (3, 40) and torch.isfinite(feats).all()
    assert [len(s) for s in segments(torch.zeros(1000), 300)] == [300, 300, 300]
    assert [len(s) for s in segments(torch.zeros(200), 300)] == [200]
