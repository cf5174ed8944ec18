"""A small CTC phone recognizer: the content measure of the evaluation (phone error rate, PER).

AudioLM measures content with a speech recognizer's word error rate. The embedded corpus has no
recognizer trained on real speech that understands it, but every utterance carries its phoneme
sequence, so a recognizer is trained on the TRAINING voices (log-mel -> conv encoder -> CTC over
the corpus' phone inventory) and scores held-out voices. PER is the edit distance between greedy
CTC output and the reference phones, over the reference length (torchmetrics' word error rate of
space-joined phone names).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .conv_encoder import ConvEncoder

BLANK = "<blank>"
SILENCES = frozenset({"_", "", " ", "_:", "||", "|"})  # espeak pause symbols: not phones


@dataclass
class PhoneRecognizerConfig:
    """Size and training budget of the phone recognizer."""

    n_mels: int = 80
    channels: int = 256
    blocks: int = 6
    kernel: int = 9
    dropout: float = 0.1
    lr: float = 2e-3
    weight_decay: float = 1e-2
    batch_seconds: float = 80.0  # audio per training batch (utterances of similar length together)
    # A measuring instrument must not depend on the machine's speed: training runs a fixed number of
    # steps (600: about 18 minutes on one free CPU core for the 2-hour corpus; PER 0.16 after 256).
    max_steps: int = 600
    max_minutes: float = 60.0  # a guard only; a run it stops is reported in the facts (steps)
    min_phone_count: int = 3  # rarer phone names in the training data are merged into "<unk>"
    seed: int = 0


def phone_sequence(phonemes: Sequence[dict]) -> list[str]:
    """The phone names of an utterance's timed phonemes (pauses dropped)."""
    return [str(p["phoneme"]).replace(" ", "") for p in phonemes if str(p["phoneme"]).strip() not in SILENCES]


class LogMel(nn.Module):
    """Wave [B, T] -> per-utterance mean/variance-normalised log-mel [B, F, n_mels] at 100 Hz."""

    def __init__(self, sample_rate: int, n_mels: int) -> None:
        super().__init__()
        from soundstage.plugins.semantic.features import MelFeatures

        self.mel = MelFeatures(sample_rate, sample_rate // 100, "logmel", n_mels=n_mels, use_deltas=False)

    @torch.no_grad()
    def forward(self, wave: Tensor) -> Tensor:
        feats = self.mel(wave.float())
        return (feats - feats.mean(1, keepdim=True)) / feats.std(1, keepdim=True).clamp(min=1e-3)


class PhoneRecognizer(nn.Module):
    """Log-mel -> ConvEncoder -> per-frame phone log-probabilities (index 0 is the CTC blank)."""

    def __init__(self, phones: list[str], sample_rate: int, config: PhoneRecognizerConfig) -> None:
        super().__init__()
        self.phones, self.sample_rate, self.config = list(phones), int(sample_rate), config
        self.vocab = [BLANK] + self.phones
        self.index = {p: i for i, p in enumerate(self.vocab)}
        self.features = LogMel(sample_rate, config.n_mels)
        self.encoder = ConvEncoder(config.n_mels, config.channels, config.blocks, config.kernel, config.dropout)
        self.head = nn.Linear(config.channels, len(self.vocab))

    def forward(self, feats: Tensor) -> Tensor:
        """Features [B, F, n_mels] -> log-probs [B, F', V]."""
        return F.log_softmax(self.head(self.encoder(feats)), dim=-1)

    def encode_labels(self, phones: list[str]) -> list[int]:
        """Phone names -> ids (names outside the inventory -> ``<unk>``, or dropped when it has none)."""
        unk = self.index.get("<unk>")
        ids = [self.index.get(p, unk) for p in phones]
        return [i for i in ids if i is not None]

    @torch.no_grad()
    def transcribe(self, waves: list[Tensor]) -> list[list[str]]:
        """Greedy CTC phone strings of 1-D waves at ``sample_rate`` (one at a time: no padding effects)."""
        self.eval()
        out = []
        for wave in waves:
            if wave.numel() < self.sample_rate // 50:
                out.append([])
                continue
            feats = self.features(wave.float().reshape(1, -1).to(self.head.weight.device))
            out.append(greedy_ctc(self(feats)[0], self.vocab))
        return out

    @staticmethod
    def out_frames(frames: Tensor) -> Tensor:
        """Output frames (CTC lengths) for ``frames`` log-mel frames."""
        return ConvEncoder.out_frames(frames)


def greedy_ctc(logp: Tensor, vocab: list[str]) -> list[str]:
    """Best-path CTC decoding of log-probs [F, V] (index 0 the blank): repeats merged, blanks dropped."""
    seq, prev = [], 0
    for i in logp.argmax(-1).tolist():
        if i != prev and i != 0:
            seq.append(vocab[i])
        prev = i
    return seq


def phone_errors(hypotheses: list[list[str]], references: list[list[str]]) -> tuple[list[float], list[int]]:
    """Per pair: edit distance and reference length (0 and 0 for an empty reference, which PER skips)."""
    from torchmetrics.functional.text import word_error_rate

    edits, lengths = [], []
    for h, r in zip(hypotheses, references):
        edits.append(round(float(word_error_rate(" ".join(h), " ".join(r))) * len(r)) if r else 0)
        lengths.append(len(r))
    return edits, lengths


def edit_rate(edits: list[float], lengths: list[int]) -> float:
    """Total edits over total reference tokens (NaN without any reference)."""
    total = sum(lengths)
    return sum(edits) / total if total else float("nan")


def phone_error_rate(hypotheses: list[list[str]], references: list[list[str]]) -> float:
    """Corpus-level PER: total edit distance / total reference phones (torchmetrics' WER over phone tokens)."""
    return edit_rate(*phone_errors(hypotheses, references))
