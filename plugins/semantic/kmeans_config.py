"""The ``kmeans_tokenizer`` stage's config, and the per-utterance feature normalisation it selects."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from soundstage.config import check_ranges

from .datamodule import SemanticDataConfig
from .hubert_model import HubertConfig

FEATURE_KINDS = ("mfcc", "logmel", "hubert", "ssl")
UTTERANCE_NORMS = ("none", "mean", "meanvar")


def utterance_normalize(x: torch.Tensor, frame_lengths: torch.Tensor | None, kind: str) -> torch.Tensor:
    """Per-utterance mean (and variance) normalisation of x [B, F, D] over each utterance's valid frames.

    Cepstral mean (variance) normalisation: removes what is constant over an utterance (speaker
    and channel), so k-means spends its clusters on what changes within one: the phones.
    """
    if kind == "none" or x.shape[1] == 0:
        return x
    frames = x.shape[1]
    n = torch.full((x.shape[0],), frames, device=x.device) if frame_lengths is None else frame_lengths.to(x.device).clamp(1, frames)
    valid = (torch.arange(frames, device=x.device)[None] < n[:, None]).to(x.dtype)[..., None]  # [B, F, 1]
    count = n.to(x.dtype)[:, None, None]  # [B, 1, 1]
    mean = (x * valid).sum(1, keepdim=True) / count  # [B, 1, D]
    x = x - mean
    if kind == "meanvar":
        std = ((x * valid).pow(2).sum(1, keepdim=True) / count).clamp_min(1e-8).sqrt()
        x = x / std
    return x


@dataclass
class KMeansTokenizerConfig(SemanticDataConfig):
    """Semantic tokenizer: which features, how many clusters, what rate, how to stream the fit."""

    sample_rate: int = 16000
    frame_rate: float = 25.0  # tokens per second (paper: 25); sample_rate / frame_rate must be an integer
    vocab_size: int = 1024  # k-means clusters (paper: 1024)
    features: str = "mfcc"  # mfcc | logmel | hubert (upstream stage producing ssl_features) | ssl (local checkpoint)
    n_mels: int = 40
    n_mfcc: int = 13
    win_ms: float = 25.0
    deltas: bool = True
    layer: int = 6  # feature layer of hubert / ssl models
    ssl_path: Optional[str] = None  # local transformers checkpoint directory (features=ssl); never downloaded
    ssl_spec: str = ""  # set from ssl_path: the kept SSL architecture (JSON), so the export is self-contained
    hubert: Optional[HubertConfig] = None  # set by prepare() from the upstream hubert stage; leave unset in recipes
    normalize: bool = True  # standardise features with statistics of the seeding frames
    utterance_norm: str = "none"  # none | mean | meanvar: per-utterance (CMN / CMVN) normalisation first
    init_batches: int = 8  # batches gathered for k-means++ seeding (needs >= vocab_size frames)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranges(self, at_least_one=("vocab_size", "n_mels", "n_mfcc", "init_batches"),
                     positive=("sample_rate", "frame_rate", "win_ms"), non_negative=("layer",))
