"""Phone purity, cluster purity and PNMI against phoneme timings."""
import numpy as np
import pytest
import torch

from soundstage.plugins.semantic.phone_metrics import (
    PhoneClusterCounts,
    bootstrap_difference,
    frame_phone_labels,
    merged,
    phone_metrics,
)


def test_frame_labels_take_the_phone_at_each_frame_centre():
    phonemes = [{"phoneme": "a", "start": 0.0, "end": 0.1}, {"phoneme": "b", "start": 0.1, "end": 0.25}]
    # 20 Hz frames: centres 0.025, 0.075, 0.125, 0.175, 0.225, 0.275
    assert frame_phone_labels(phonemes, 6, 20.0) == ["a", "a", "b", "b", "b", None]
    # a gap between phonemes and an offset crop
    gap = [{"phoneme": "a", "start": 0.0, "end": 0.05}, {"phoneme": "b", "start": 0.1, "end": 0.2}]
    assert frame_phone_labels(gap, 4, 20.0) == ["a", None, "b", "b"]
    assert frame_phone_labels(gap, 2, 20.0, offset=0.1) == ["b", "b"]


def test_perfect_labelling_scores_one_and_constant_labelling_zero():
    rng = np.random.default_rng(0)
    phones = [f"p{i}" for i in rng.integers(0, 6, 500)]
    perfect = PhoneClusterCounts()
    perfect.update(torch.tensor([int(p[1:]) + 10 for p in phones]), phones)  # a bijection, any ids
    m = perfect.compute()
    assert m["pnmi"] == pytest.approx(1.0)
    assert m["phone_purity"] == pytest.approx(1.0)
    assert m["cluster_purity"] == pytest.approx(1.0)
    constant = PhoneClusterCounts()
    constant.update(torch.zeros(500, dtype=torch.long), phones)
    m = constant.compute()
    assert m["pnmi"] == pytest.approx(0.0, abs=1e-12)
    assert m["cluster_purity"] == pytest.approx(1.0)  # every phone falls in the one cluster
    majority = max(phones.count(p) for p in set(phones)) / len(phones)
    assert m["phone_purity"] == pytest.approx(majority)


def test_metrics_of_a_known_joint_distribution():
    # two phones; cluster 0 = 3x a + 1x b, cluster 1 = 4x b
    joint = np.array([[3.0, 0.0], [1.0, 4.0]])  # [phones, clusters]
    m = phone_metrics(joint)
    assert m["phone_purity"] == pytest.approx((3 + 4) / 8)
    assert m["cluster_purity"] == pytest.approx((3 + 4) / 8)
    p = joint / 8
    py, pz = p.sum(1), p.sum(0)
    mi = sum(p[i, j] * np.log(p[i, j] / (py[i] * pz[j])) for i in range(2) for j in range(2) if p[i, j] > 0)
    assert m["pnmi"] == pytest.approx(mi / -(py * np.log(py)).sum())
    # unlabelled frames are ignored, merge adds histograms
    acc = PhoneClusterCounts()
    acc.update([0, 1, 2], ["a", None, "a"])
    other = PhoneClusterCounts()
    other.update([0], ["b"])
    acc.merge([other])
    assert acc.compute()["frames"] == 3


def _utterances(rng, n_utts, labeller):
    """Per-utterance counts of ``labeller(phone_ids) -> token ids`` on random phone sequences."""
    utts = []
    for _ in range(n_utts):
        phones = rng.integers(0, 5, 40)
        counts = PhoneClusterCounts()
        counts.update(torch.as_tensor(labeller(phones)), [f"p{p}" for p in phones])
        utts.append(counts)
    return utts


def test_paired_bootstrap_of_a_metric_difference():
    rng = np.random.default_rng(0)
    perfect = _utterances(np.random.default_rng(1), 30, lambda ph: ph)
    constant = _utterances(np.random.default_rng(1), 30, lambda ph: np.zeros_like(ph))  # the same phones
    out = bootstrap_difference(constant, perfect, num_samples=50)
    assert out["pnmi"]["diff"] == pytest.approx(1.0)
    assert out["pnmi"]["std"] == pytest.approx(0.0, abs=1e-12)  # 1 - 0 on every resample
    assert out["pnmi"]["lo"] == pytest.approx(1.0) and out["pnmi"]["hi"] == pytest.approx(1.0)
    # identical tokenizers differ by exactly zero on every resample
    same = bootstrap_difference(constant, constant, num_samples=20)
    assert all(v == pytest.approx(0.0, abs=1e-12) for m in same.values() for v in m.values())
    # a noisy labelling: the interval brackets the full-data difference and has a real width
    noisy = _utterances(np.random.default_rng(1), 30, lambda ph: np.where(rng.random(len(ph)) < 0.3, 7, ph))
    out = bootstrap_difference(noisy, perfect, num_samples=200, seed=3)
    assert out["pnmi"]["lo"] < out["pnmi"]["diff"] < out["pnmi"]["hi"] and out["pnmi"]["std"] > 0
    assert merged(perfect).compute()["frames"] == 30 * 40
    with pytest.raises(ValueError):
        bootstrap_difference(perfect, perfect[:3])
