"""MFCC / log-mel features: frame contract, spectral sanity, deltas."""
import math

import pytest
import torch

from soundstage.data.mel import hz_to_mel
from soundstage.plugins.semantic.features import MelFeatures, deltas


@pytest.mark.parametrize("hop", [320, 640])
@pytest.mark.parametrize("length", [0, 319, 320, 321, 1000, 16000, 16639])
def test_frame_count_is_floor_of_length_over_hop(hop, length):
    feats = MelFeatures(16000, hop, "mfcc")
    out = feats(torch.randn(2, length))
    assert out.shape == (2, length // hop, 39)
    assert feats.num_frames(length) == length // hop


def test_log_mel_peaks_at_the_tone_frequency():
    feats = MelFeatures(16000, 160, "logmel", n_mels=40, use_deltas=False)
    t = torch.arange(16000) / 16000
    out = feats(torch.sin(2 * math.pi * 1000 * t)[None])  # [1, 100, 40]
    peak_bin = int(out[0, 50].argmax())
    mel_edges = torch.linspace(0, float(hz_to_mel(8000.0)), 42)
    assert abs(float(mel_edges[peak_bin + 1]) - float(hz_to_mel(1000.0))) < 60  # within one filter spacing


def test_deltas_of_a_ramp_are_its_slope():
    ramp = torch.arange(20.0)[None, :, None] * 0.5  # [1, 20, 1]
    d = deltas(ramp)
    assert torch.allclose(d[0, 2:-2, 0], torch.full((16,), 0.5))
