"""Training the speaker-embedding model on random crops of the training voices (AM-softmax over voices)."""
from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from soundstage.lr_schedule import warmup_anneal
from soundstage.optim import adamw
from soundstage.data.utterances import Utterance, by_voice

from .conv_encoder import spec_augment
from .eval_training import fit_quietly
from .speaker_embedding import SpeakerEmbedding, SpeakerEmbeddingConfig


class _Crops(IterableDataset):
    """Endless batches (features [B, F, D], voice ids [B]) of random crops, one voice drawn per row."""

    def __init__(self, feats: dict[int, list[torch.Tensor]], frames: int, batch_size: int, seed: int) -> None:
        self.feats, self.frames, self.batch_size, self.seed = feats, frames, batch_size, seed

    def __iter__(self):  # type: ignore[no-untyped-def]
        rng = torch.Generator().manual_seed(self.seed)
        voices = sorted(self.feats)
        while True:
            xs, ys = [], []
            for _ in range(self.batch_size):
                v = voices[int(torch.randint(len(voices), (1,), generator=rng))]
                utts = self.feats[v]
                f = utts[int(torch.randint(len(utts), (1,), generator=rng))]
                start = int(torch.randint(max(1, f.shape[0] - self.frames + 1), (1,), generator=rng))
                crop = f[start : start + self.frames]
                if crop.shape[0] < self.frames:  # short utterance: repeat it to the crop length
                    crop = crop.repeat((self.frames + crop.shape[0] - 1) // crop.shape[0], 1)[: self.frames]
                xs.append(crop)
                ys.append(v)
            yield torch.stack(xs), torch.tensor(ys)


class _AMSoftmaxModule(L.LightningModule):
    def __init__(self, model: SpeakerEmbedding, num_voices: int, config: SpeakerEmbeddingConfig) -> None:
        super().__init__()
        self.model, self.config = model, config
        self.classes = nn.Parameter(torch.randn(num_voices, config.embedding_dim) * 0.01)
        self.rng = torch.Generator().manual_seed(config.seed)

    def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        x, y = batch
        emb = self.model(spec_augment(x, self.rng, time_masks=1, freq_masks=1, freq_width=6))  # [B, D]
        cos = emb @ F.normalize(self.classes, dim=-1).T  # [B, V]
        logits = self.config.scale * (cos - self.config.margin * F.one_hot(y, cos.shape[1]))
        loss = F.cross_entropy(logits, y)
        self.log("speaker_loss", loss, prog_bar=True)
        self.log("speaker_acc", (cos.argmax(-1) == y).float().mean())
        return loss

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        c = self.config
        opt = adamw(self.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_anneal(self.trainer, 100, 0.02))  # cosine over max_steps / max_minutes
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def train_speaker_embedding(utterances: list[Utterance], sample_rate: int, config: SpeakerEmbeddingConfig,
                            log_dir: str | None = None) -> tuple[SpeakerEmbedding, dict]:
    """Train on utterances with a ``voice``; returns the model (eval mode) and training facts."""
    groups = by_voice(utterances)
    if len(groups) < 2:
        raise ValueError(f"the speaker model needs at least two voices in the training audio; found {len(groups)}")
    torch.manual_seed(config.seed)
    model = SpeakerEmbedding(sample_rate, config)
    mel = {v: [model.mel(torch.from_numpy(u.wave)[None].float())[0] for u in us] for v, us in groups.items()}
    frames = torch.cat([f for fs in mel.values() for f in fs])  # [N, n_mels]
    model.feat_mean.copy_(frames.mean(0))
    model.feat_std.copy_(frames.std(0).clamp(min=1e-3))
    voices = sorted(groups)
    feats = {i: [(f - model.feat_mean) / model.feat_std for f in mel[v]] for i, v in enumerate(voices)}
    data = _Crops(feats, int(config.crop_seconds * 100), config.batch_size, config.seed)
    loader = DataLoader(data, batch_size=None)
    steps = fit_quietly(_AMSoftmaxModule(model, len(voices), config), loader, config.max_steps, config.max_minutes, log_dir)
    facts = {"voices": len(voices), "utterances": sum(len(us) for us in groups.values()), "steps": steps}
    return model.eval(), facts
