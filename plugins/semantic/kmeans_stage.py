"""The ``kmeans_tokenizer`` stage: frame features -> mini-batch k-means -> semantic token ids.

Features are MFCC / log-mel with deltas (HuBERT's first iteration), a layer of an upstream
``hubert`` stage (kept inside this model as a frozen, truncated copy, so the saved tokenizer is
self-contained) or a layer of a local ``transformers`` checkpoint (``ssl``). Training streams
audio batches through Lightning with manual optimization and no optimizer: the first
``init_batches`` batches seed k-means++ and the feature standardisation, every later batch is one
mini-batch k-means update. Frame contract: ``encode(wave [B, T]) -> [B, T // hop_length]``.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn

from soundstage.errors import SoundstageError
from soundstage.plugins.kmeans import MiniBatchKMeans
from soundstage.plugins.roles import SemanticTokenizerStage
from soundstage.stage import StageContext

from .datamodule import SemanticDataModule
from .features import MelFeatures
from .hubert_model import Hubert, HubertConfig
from .kmeans_config import FEATURE_KINDS, UTTERANCE_NORMS, KMeansTokenizerConfig, utterance_normalize
from .phone_metrics import PhoneClusterCounts, frame_phone_labels
from .spec import KMeansTokenizerSpec

class KMeansTokenizerStage(KMeansTokenizerSpec, SemanticTokenizerStage):
    """Semantic tokenizer: ``encode(wave [B, T]) -> int64 ids [B, T // hop_length]``."""

    def __init__(self, config: KMeansTokenizerConfig) -> None:
        super().__init__(config)
        c = config
        if c.features not in FEATURE_KINDS:
            raise SoundstageError(f"kmeans_tokenizer: features must be one of {FEATURE_KINDS}, got {c.features!r}")
        if c.utterance_norm not in UTTERANCE_NORMS:
            raise SoundstageError(f"kmeans_tokenizer: utterance_norm must be one of {UTTERANCE_NORMS}, got {c.utterance_norm!r}")
        hop = c.sample_rate / c.frame_rate
        if abs(hop - round(hop)) > 1e-6:
            raise SoundstageError(f"kmeans_tokenizer: sample_rate / frame_rate = {hop} is not a whole number of samples")
        self.automatic_optimization = False
        self.mel: MelFeatures | None = None
        self.feature_model: nn.Module | None = None
        self.pool = 1  # feature-model frames averaged into one token frame
        if c.features in ("mfcc", "logmel"):
            self.mel = MelFeatures(c.sample_rate, self.hop_length, c.features, c.n_mels, c.n_mfcc, c.win_ms, c.deltas)
            dim = self.mel.dim
        elif c.features == "hubert":
            # Built here when the config carries the architecture (loading an export); else in prepare().
            dim = self._attach_hubert(c.hubert) if c.hubert is not None else 0
        else:
            dim = self._attach_ssl()
        self.kmeans = MiniBatchKMeans(c.vocab_size, max(dim, 1))
        self.register_buffer("feat_mean", torch.zeros(max(dim, 1)))
        self.register_buffer("feat_std", torch.ones(max(dim, 1)))
        # Lightning's global_step only counts optimizer steps; k-means counts its own updates.
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self._seed_value = 0  # the recipe seed, set by build_datamodule
        self._seed_frames: list[torch.Tensor] = []
        self._phones: PhoneClusterCounts | None = None

    # --- feature models ----------------------------------------------------------------------
    def _set_pool(self, model_hop: int) -> None:
        if self.hop_length % model_hop:
            raise SoundstageError(
                f"kmeans_tokenizer: frame_rate {self.config.frame_rate} Hz is not the feature model's rate "
                f"({self.config.sample_rate / model_hop} Hz) divided by a whole number"
            )
        self.pool = self.hop_length // model_hop

    def _attach_hubert(self, cfg: HubertConfig) -> int:
        self.feature_model = Hubert(cfg).requires_grad_(False).eval()
        self._set_pool(self.feature_model.hop_length)
        return cfg.dim

    def _attach_ssl(self) -> int:
        from .ssl_features import SSLFeatures

        c = self.config
        if c.ssl_spec:
            model = SSLFeatures(json.loads(c.ssl_spec))
        elif c.ssl_path:
            model = SSLFeatures.from_pretrained(c.ssl_path, c.layer)
            c.ssl_spec = model.spec_json()
        else:
            raise SoundstageError("kmeans_tokenizer: features='ssl' needs ssl_path (a local transformers checkpoint directory)")
        if model.sample_rate != c.sample_rate:
            raise SoundstageError(f"kmeans_tokenizer: SSL model expects {model.sample_rate} Hz audio, config says {c.sample_rate}")
        self.feature_model = model.requires_grad_(False).eval()
        self._set_pool(model.hop_length)
        return model.dim

    def prepare(self, ctx: StageContext) -> None:
        """With ``features: hubert``, copy the upstream HuBERT's layers up to ``layer`` in as a frozen submodule.

        Always copied from upstream, even when the config already names an architecture.
        """
        c = self.config
        if c.features != "hubert":
            return
        upstream = ctx.load_upstream("ssl_features")
        model = getattr(upstream, "model", None)
        if not isinstance(model, Hubert):
            raise SoundstageError(f"kmeans_tokenizer: upstream {upstream.stage_name!r} has no HuBERT model")
        if not 0 <= c.layer <= model.cfg.depth:
            raise SoundstageError(f"kmeans_tokenizer: layer {c.layer} outside the upstream HuBERT's 0..{model.cfg.depth}")
        if model.cfg.sample_rate != c.sample_rate:
            raise SoundstageError(f"kmeans_tokenizer: upstream HuBERT runs at {model.cfg.sample_rate} Hz, config says {c.sample_rate}")
        c.hubert = dataclasses.replace(model.cfg, depth=c.layer, num_targets=0, dropout=0.0)
        dim = self._attach_hubert(c.hubert)
        missing, _ = self.feature_model.load_state_dict(model.state_dict(), strict=False)
        if missing:
            raise SoundstageError(f"kmeans_tokenizer: upstream HuBERT lacks weights {missing[:5]}")
        self.kmeans = MiniBatchKMeans(c.vocab_size, dim)
        self.feat_mean = torch.zeros(dim)
        self.feat_std = torch.ones(dim)

    def train(self, mode: bool = True) -> "KMeansTokenizerStage":
        super().train(mode)
        if self.feature_model is not None:  # frozen: never dropout / layerdrop, whatever Lightning asks
            self.feature_model.eval()
        return self

    # --- the tokenizer interface (sample_rate, frame_rate, hop_length, vocab_size: SemanticTokenizerStage) ---
    def num_frames(self, num_samples: int) -> int:
        """The frame contract: floor(num_samples / hop_length)."""
        return num_samples // self.hop_length

    @torch.no_grad()
    def raw_features(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Frame features [B, T // hop_length, D] of wave [B, T] (after ``utterance_norm``), before standardisation."""
        if wave.dim() == 1:
            wave = wave[None]
        wave = wave.to(self.feat_mean.device, torch.float32)
        if self.mel is not None:
            x = self.mel(wave)
        elif self.feature_model is None:
            raise SoundstageError("kmeans_tokenizer: features='hubert' needs prepare(ctx) with an upstream hubert stage")
        else:
            frames = self.num_frames(wave.shape[-1])
            x = self.feature_model.features(wave, self.config.layer, lengths)  # [B, T // model_hop, D]
            x = x[:, : frames * self.pool].reshape(x.shape[0], frames, self.pool, -1).mean(2)  # [B, T // hop, D]
        return utterance_normalize(x, None if lengths is None else lengths // self.hop_length, self.config.utterance_norm)

    @torch.no_grad()
    def features(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Standardised frame features [B, T // hop_length, D] (what k-means clusters)."""
        x = self.raw_features(wave, lengths)
        return (x - self.feat_mean) / self.feat_std if self.config.normalize else x

    @torch.no_grad()
    def encode(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids int64 [B, T // hop_length] of wave [B, T] (float, ``sample_rate`` Hz)."""
        if not bool(self.kmeans.initialized):
            raise SoundstageError("kmeans_tokenizer: k-means is not fitted yet")
        return self.kmeans(self.features(wave, lengths))

    @torch.no_grad()
    def token_costs(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Squared distance of every frame to every token's centroid [B, T // hop_length, vocab_size]
        (``encode`` is its argmin): how far audio is from given ids, not only whether it matches them."""
        if not bool(self.kmeans.initialized):
            raise SoundstageError("kmeans_tokenizer: k-means is not fitted yet")
        x = self.features(wave, lengths)
        return self.kmeans.distances(x.reshape(-1, x.shape[-1]).float()).view(*x.shape[:-1], -1)

    # --- fitting -------------------------------------------------------------------------
    def _valid_frames(self, batch: dict[str, Any]) -> torch.Tensor:
        """Features of the non-padded frames of a batch, flattened to [N, D] (before standardisation)."""
        wave = batch["audio"]
        lengths = batch.get("lengths")
        x = self.raw_features(wave, lengths)
        if lengths is None:
            return x.reshape(-1, x.shape[-1])
        valid = torch.arange(x.shape[1], device=x.device)[None] < (lengths.to(x.device) // self.hop_length)[:, None]
        return x[valid]

    def _seed(self) -> None:
        """Feature statistics (all-reduced) and k-means++ (rank 0's pick) from the gathered frames."""
        x = torch.cat(self._seed_frames)
        self._seed_frames = []
        if self.config.normalize:
            stats = torch.stack([x.sum(0), x.pow(2).sum(0)]).double()  # [2, D]
            n = torch.tensor(float(x.shape[0]), dtype=torch.float64, device=x.device)
            if dist.is_available() and dist.is_initialized():
                dist.all_reduce(stats)
                dist.all_reduce(n)
            mean = stats[0] / n
            std = (stats[1] / n - mean.pow(2)).clamp_min(1e-8).sqrt()
            self.feat_mean.copy_(mean.float())
            self.feat_std.copy_(std.float())
            x = (x - self.feat_mean) / self.feat_std
        if x.shape[0] < self.config.vocab_size:
            raise SoundstageError(
                f"kmeans_tokenizer: {x.shape[0]} frames from {self.config.init_batches} batches cannot seed "
                f"{self.config.vocab_size} clusters; raise init_batches, batch_size or segment_seconds"
            )
        gen = torch.Generator(device=x.device).manual_seed(self._seed_value)
        self.kmeans.init_plus_plus(x, gen)
        self.kmeans.partial_fit(x)

    def on_fit_start(self) -> None:
        self._seed_frames = []

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        x = self._valid_frames(batch)  # [N, D]
        if not bool(self.kmeans.initialized):
            self._seed_frames.append(x)
            if len(self._seed_frames) >= self.config.init_batches:
                self._seed()
            return None
        if self.config.normalize:
            x = (x - self.feat_mean) / self.feat_std
        inertia = self.kmeans.partial_fit(x)
        self.log("train/inertia", inertia, prog_bar=True, batch_size=x.shape[0])
        self._count_update()
        return None

    def _count_update(self) -> None:
        # No optimizer means Lightning's global_step never moves; honour max_steps ourselves.
        self.num_updates += 1
        max_steps = self.trainer.max_steps
        if max_steps is not None and max_steps > 0 and int(self.num_updates) >= max_steps:
            self.trainer.should_stop = True

    def configure_optimizers(self) -> None:
        return None

    # --- validation: phone metrics ---------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._phones = PhoneClusterCounts()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if not bool(self.kmeans.initialized):
            return
        lengths = batch["lengths"]
        x = self.features(batch["audio"], lengths)
        ids = self.kmeans(x)  # [B, F]
        frames = lengths // self.hop_length
        valid = torch.arange(x.shape[1], device=x.device)[None] < frames.to(x.device)[:, None]
        d = self.kmeans.assign(x[valid])[1]
        self.log("val/inertia", d.mean(), batch_size=int(valid.sum()))
        for b, phonemes in enumerate(batch.get("phonemes") or []):
            if phonemes and self._phones is not None:
                n = int(frames[b])
                self._phones.update(ids[b, :n].cpu(), frame_phone_labels(phonemes, n, self.frame_rate))

    def on_validation_epoch_end(self) -> None:
        if self._phones is None or not self._phones.counts:
            return
        metrics = self._phones.compute()
        for name in ("pnmi", "phone_purity", "cluster_purity"):
            self.log(f"val/{name}", metrics[name])
        self._phones = None

    def build_datamodule(self, ctx: StageContext) -> SemanticDataModule:
        c = self.config
        self._seed_value = ctx.seed
        return SemanticDataModule.from_config(ctx, c, c.sample_rate)
