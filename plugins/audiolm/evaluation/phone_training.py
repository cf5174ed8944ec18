"""Training the CTC phone recognizer on the training voices' utterances (whole utterances, SpecAugment)."""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from soundstage.lr_schedule import warmup_anneal
from soundstage.optim import adamw
from soundstage.data.utterances import Utterance

from .conv_encoder import ConvEncoder, spec_augment
from .eval_training import LengthBuckets, fit_quietly, pad_frames
from .phone_recognizer import PhoneRecognizer, PhoneRecognizerConfig, phone_sequence


class CTCModule(L.LightningModule):
    """CTC training of a model with ``forward(inputs) -> log-probs [B, F', V]`` and ``out_frames(lengths)``;
    ``augment(inputs, generator)`` perturbs each training batch (SpecAugment for log-mel)."""

    def __init__(self, model: nn.Module, config: Any, augment: Callable[[Tensor, torch.Generator], Tensor] = spec_augment) -> None:
        super().__init__()
        self.model, self.config, self.augment = model, config, augment
        self.rng = torch.Generator().manual_seed(config.seed)

    def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        feats, feat_lengths, labels, label_lengths = batch
        logp = self.model(self.augment(feats, self.rng))  # [B, F', V]
        out_lengths = self.model.out_frames(feat_lengths).clamp(max=logp.shape[1])
        loss = F.ctc_loss(logp.transpose(0, 1), labels, out_lengths, label_lengths, blank=0, zero_infinity=True)
        self.log("phone_ctc_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        c = self.config
        opt = adamw(self.model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_anneal(self.trainer, 100, 0.02))  # cosine over max_steps / max_minutes
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def phone_inventory(utterances: list[Utterance], min_count: int) -> list[str]:
    """Phone names seen at least ``min_count`` times (most frequent first), plus ``<unk>`` for the rest."""
    counts = Counter(p for u in utterances for p in phone_sequence(u.phonemes))
    phones = [p for p, n in counts.most_common() if n >= min_count]
    return phones + ["<unk>"]


def noise_clips(n: int, sample_rate: int, seed: int) -> list[torch.Tensor]:
    """``n`` clips of 1-4 s of white, pink-ish or brown-ish noise at random levels (non-speech examples)."""
    rng = torch.Generator().manual_seed(seed + 7919)
    clips = []
    for i in range(n):
        length = int(sample_rate * (1 + 3 * float(torch.rand(1, generator=rng))))
        white = torch.randn(length, generator=rng)
        colour = i % 3  # 0 white, 1 a first-order low-pass (pink-ish), 2 integrated (brown-ish)
        if colour == 1:
            white = white + torch.cat([white.new_zeros(1), white[:-1]])
        elif colour == 2:
            white = torch.cumsum(white, 0)
            white = white - white.mean()
        level = 10 ** (-1 - 2 * float(torch.rand(1, generator=rng)))  # -20 to -60 dBFS RMS
        clips.append(white / white.pow(2).mean().sqrt().clamp(min=1e-8) * level)
    return clips


def train_phone_recognizer(utterances: list[Utterance], sample_rate: int, config: PhoneRecognizerConfig,
                           log_dir: str | None = None) -> tuple[PhoneRecognizer, dict]:
    """Train on utterances with phoneme timings; returns the model (eval mode) and training facts."""
    labelled = [u for u in utterances if phone_sequence(u.phonemes)]
    if len(labelled) < 4:
        raise ValueError(f"the phone recognizer needs utterances with phoneme timings; found {len(labelled)}")
    torch.manual_seed(config.seed)
    model = PhoneRecognizer(phone_inventory(labelled, config.min_phone_count), sample_rate, config)
    feats = [model.features(torch.from_numpy(u.wave)[None])[0] for u in labelled]  # [F_i, n_mels]
    labels = [torch.tensor(model.encode_labels(phone_sequence(u.phonemes)), dtype=torch.long) for u in labelled]
    # Noise clips with empty transcripts: per-utterance normalisation makes any noise look like speech,
    # so without them the recognizer hallucinates phones in noise (and in a codec's noisy output).
    for wave in noise_clips(len(labelled) // 20 + 1, sample_rate, config.seed):
        feats.append(model.features(wave[None])[0])
        labels.append(torch.zeros(0, dtype=torch.long))
    keep = [i for i in range(len(feats)) if len(labels[i]) <= ConvEncoder.out_frames(feats[i].shape[0])]

    def collate(idx: list[int]):  # type: ignore[no-untyped-def]
        x, x_len = pad_frames([feats[keep[i]] for i in idx])
        ys = [labels[keep[i]] for i in idx]
        return x, x_len, torch.cat(ys), torch.tensor([len(y) for y in ys])

    frames_per_batch = int(config.batch_seconds * 100)
    sampler = LengthBuckets([feats[i].shape[0] for i in keep], frames_per_batch, config.seed)
    loader = DataLoader(list(range(len(keep))), batch_sampler=sampler, collate_fn=collate)
    steps = fit_quietly(CTCModule(model, config), loader, config.max_steps, config.max_minutes, log_dir)
    facts = {"utterances": len(labelled), "noise_clips": len(feats) - len(labelled), "phones": len(model.phones),
             "steps": steps, "hours": round(sum(len(u.wave) for u in labelled) / sample_rate / 3600, 3)}
    return model.eval(), facts
