"""Phone purity, cluster purity and PNMI of frame tokens against phoneme timings (HuBERT paper, sec. 4.5).

With y the frame's phone and z its token, from the joint distribution p(y, z):
phone purity = E_z[max_y p(y | z)], cluster purity = E_y[max_z p(z | y)], PNMI = I(y; z) / H(y).
Phone labels come from ``{"phoneme", "start", "end"}`` timings (seconds): frame ``i`` at
``frame_rate`` Hz takes the phoneme covering its centre ``(i + 0.5) / frame_rate``; frames no
phoneme covers (leading/trailing silence without a label) are left out.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

import numpy as np
import torch


def frame_phone_labels(
    phonemes: Sequence[dict], num_frames: int, frame_rate: float, offset: float = 0.0
) -> list[str | None]:
    """The phone of every frame (``None`` where no phoneme covers its centre).

    ``offset`` is the time in seconds of frame 0's start within the timed utterance (for crops).
    """
    labels: list[str | None] = [None] * num_frames
    if not phonemes or num_frames <= 0:
        return labels
    items = sorted(phonemes, key=lambda p: float(p["start"]))
    starts = np.array([float(p["start"]) for p in items])
    ends = np.array([float(p["end"]) for p in items])
    centres = offset + (np.arange(num_frames) + 0.5) / frame_rate
    idx = np.searchsorted(starts, centres, side="right") - 1  # last phoneme starting at or before the centre
    for i, j in enumerate(idx):
        if j >= 0 and centres[i] < ends[j]:
            labels[i] = str(items[j]["phoneme"])
    return labels


class PhoneClusterCounts:
    """Accumulates the (token, phone) joint histogram over many utterances."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[int, str]] = Counter()

    def update(self, ids: torch.Tensor | Sequence[int], labels: Sequence[str | None]) -> None:
        """Add one utterance: frame token ids [F] and frame phone labels (length >= F is cropped)."""
        ids_list = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        for z, y in zip(ids_list, labels):
            if y is not None:
                self.counts[(int(z), y)] += 1

    def merge(self, others: Iterable["PhoneClusterCounts | Counter"]) -> None:
        """Add the histograms of other accumulators (e.g. gathered from other ranks)."""
        for other in others:
            self.counts.update(other.counts if isinstance(other, PhoneClusterCounts) else other)

    def joint(self) -> np.ndarray:
        """The joint count matrix [num_phones, num_tokens] (only tokens and phones seen)."""
        phones = sorted({y for _, y in self.counts})
        tokens = sorted({z for z, _ in self.counts})
        pi = {y: i for i, y in enumerate(phones)}
        zi = {z: i for i, z in enumerate(tokens)}
        out = np.zeros((len(phones), len(tokens)), dtype=np.float64)
        for (z, y), n in self.counts.items():
            out[pi[y], zi[z]] += n
        return out

    def compute(self) -> dict[str, float]:
        """Phone purity, cluster purity, PNMI and the number of labelled frames."""
        return phone_metrics(self.joint())


def phone_metrics(joint: np.ndarray) -> dict[str, float]:
    """Metrics of a joint count matrix [num_phones, num_tokens]."""
    total = float(joint.sum())
    if total <= 0:
        return {"phone_purity": 0.0, "cluster_purity": 0.0, "pnmi": 0.0, "frames": 0.0}
    p = joint / total
    py = p.sum(1)  # [P]
    pz = p.sum(0)  # [K]
    phone_purity = float(p.max(0).sum())  # sum_z p(z) max_y p(y|z)
    cluster_purity = float(p.max(1).sum())  # sum_y p(y) max_z p(z|y)
    nz = p > 0
    mutual = float((p[nz] * np.log(p[nz] / (py[:, None] * pz[None, :])[nz])).sum())
    h_y = float(-(py[py > 0] * np.log(py[py > 0])).sum())
    # One phone only: H(y) = 0 and there is nothing to explain; report 0 rather than 0/0.
    pnmi = mutual / h_y if h_y > 0 else 0.0
    return {"phone_purity": phone_purity, "cluster_purity": cluster_purity, "pnmi": pnmi, "frames": total}


def merged(parts: Iterable[PhoneClusterCounts]) -> PhoneClusterCounts:
    """One accumulator holding the sum of ``parts`` (e.g. per-utterance counts)."""
    out = PhoneClusterCounts()
    out.merge(parts)
    return out


def bootstrap_difference(
    base: Sequence[PhoneClusterCounts], other: Sequence[PhoneClusterCounts], num_samples: int = 1000, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Paired bootstrap over utterances of ``metric(other) - metric(base)``.

    ``base[i]`` and ``other[i]`` are two tokenizers' counts on the same utterance ``i``; every
    resample draws utterances with replacement and scores both tokenizers on the same draw, so
    the spread is that of the difference, not of each score. Returns, per metric, the difference
    on all utterances (``diff``), the resamples' ``std`` and their 2.5 / 97.5 percentiles
    (``lo`` / ``hi``).
    """
    if len(base) != len(other) or not base:
        raise ValueError(f"need the same non-zero number of utterances, got {len(base)} and {len(other)}")
    rng = np.random.default_rng(seed)
    n = len(base)
    draws = [np.bincount(rng.integers(n, size=n), minlength=n).astype(np.float64) for _ in range(num_samples)]
    names = ("phone_purity", "cluster_purity", "pnmi")

    def scores(utts: Sequence[PhoneClusterCounts]) -> tuple[dict[str, float], np.ndarray]:
        phones = sorted({y for u in utts for _, y in u.counts})
        tokens = sorted({z for u in utts for z, _ in u.counts})
        pi = {y: i for i, y in enumerate(phones)}
        zi = {z: i for i, z in enumerate(tokens)}
        # Flat (utterance, cell, count) triples: a resample's joint is one weighted bincount.
        utt, cell, cnt = (np.array(v, dtype=np.int64) for v in zip(*[
            (u, pi[y] * len(tokens) + zi[z], c) for u, part in enumerate(utts) for (z, y), c in part.counts.items()
        ]))
        shape, size = (len(phones), len(tokens)), len(phones) * len(tokens)

        def joint(w: np.ndarray) -> np.ndarray:
            return np.bincount(cell, weights=cnt * w[utt], minlength=size).reshape(shape)

        full = phone_metrics(joint(np.ones(n)))
        boot = np.array([list(map(phone_metrics(joint(w)).get, names)) for w in draws])  # [S, 3]
        return full, boot

    full_a, boot_a = scores(base)
    full_b, boot_b = scores(other)
    diff = boot_b - boot_a  # [S, 3]
    return {
        k: {"diff": full_b[k] - full_a[k], "std": float(diff[:, i].std()),
            "lo": float(np.percentile(diff[:, i], 2.5)), "hi": float(np.percentile(diff[:, i], 97.5))}
        for i, k in enumerate(names)
    }
