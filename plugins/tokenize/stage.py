"""The ``tokenize`` job stage: encode the audio shards into token shards with the upstream models.

Runs Lightning's predict loop, so the work is split over every device and node the trainer
section asks for: each rank reads its share of the shards (whole utterances) and writes its own
token shards ``tokens/<split>/r<rank>-%06d.tar``; rank 0 then writes ``index.json`` per split.
With ``config.output`` (a folder or an ``s3://`` / ``gs://`` prefix) they go to ``<output>/<split>/``
instead, where every node of a cluster reads them. LM stages read them through ``TokenDataModule``.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from soundstage.errors import SoundstageError
from soundstage.stage import Stage, StageContext
from soundstage.token_contract import TokenStream

from soundstage.data.audio_datamodule import collate_audio, crop, decode_audio_sample
from soundstage.data.audio_io import speed_perturb
from soundstage.data.shard_folder import ShardFolder
from soundstage.data.shards import expand_shards
from soundstage.data.stream import ShardStream, SkipCounter, make_loader, rank_and_world
from soundstage.data.token_shards import TokenShardWriter

from .spec import STREAMS, TokenizeConfig, TokenizeSpec

log = logging.getLogger("soundstage.data")


Utterance = tuple[str, np.ndarray, dict[str, Any]]


class _UtteranceDecode:
    """A shard sample -> its utterance, then a copy at each of ``speeds`` (keys ``<key>_speed<percent>``)."""

    def __init__(self, sample_rate: int, max_samples: int, speeds: Sequence[float] = ()) -> None:
        self.sample_rate, self.max_samples, self.speeds = sample_rate, max_samples, tuple(speeds)

    def __call__(self, sample: dict[str, Any], rng: Any) -> list[Utterance]:
        key, wave, meta = decode_audio_sample(sample, self.sample_rate)
        wave = crop(wave, self.max_samples, None)
        out = [(key, wave, meta)]
        for speed in self.speeds:
            # the copy's phoneme timings would be off by the factor: it keeps none
            copy = {k: v for k, v in meta.items() if k != "phonemes"} | {"speed": speed}
            out.append((f"{key}_speed{round(speed * 100)}", speed_perturb(wave, self.sample_rate, speed), copy))
        return out


def _collate_utterances(items: list[list[Utterance]]) -> dict[str, Any]:
    flat = [u for copies in items for u in copies]
    batch = collate_audio([(k, w) for k, w, _ in flat])
    batch["meta"] = [m for _, _, m in flat]
    return batch


class UtteranceDataModule(L.LightningDataModule):
    """Whole utterances of one split, each encoded by exactly one rank x worker (predict only)."""

    def __init__(self, shards: str, sample_rate: int, batch_size: int, max_samples: int, num_workers: int,
                 speeds: Sequence[float] = ()) -> None:
        super().__init__()
        self.shards, self.sample_rate, self.batch_size = shards, sample_rate, batch_size
        self.max_samples, self.num_workers, self.speeds = max_samples, num_workers, tuple(speeds)
        self.rank: int | None = None
        self.world_size: int | None = None
        self.skipped = SkipCounter()

    def predict_dataloader(self):
        rank, world = rank_and_world(self)
        stream = ShardStream(
            expand_shards(self.shards), _UtteranceDecode(self.sample_rate, self.max_samples, self.speeds), _collate_utterances,
            self.batch_size, self.skipped, train=False, rank=rank, world_size=world,
        )
        return make_loader(stream, self.num_workers, pin_memory=False, prefetch_factor=2)


class TokenWriter(BasePredictionWriter):
    """Writes each predicted batch into this rank's token shards; rank 0 indexes them at the end."""

    def __init__(self, out_dir: str | Path, shard_bytes: float) -> None:
        super().__init__(write_interval="batch")
        self.out_dir, self.shard_bytes = out_dir, shard_bytes
        self.folder: ShardFolder | None = None
        self.writer: TokenShardWriter | None = None
        self.counts: dict[str, tuple[int, float]] = {}
        self._current: tuple[int, float] = (0, 0.0)

    def on_predict_start(self, trainer, pl_module) -> None:
        rank = trainer.global_rank
        self.folder = ShardFolder(self.out_dir)
        for old in self.folder.names(f"r{rank}-*"):  # a previous, interrupted attempt of this rank
            self.folder.remove(old)
        self.writer = TokenShardWriter(self.folder, f"r{rank}", max_bytes=self.shard_bytes)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        for sample in prediction:
            shards_before = len(self.writer.shards)
            self.writer.write(sample["key"], sample["meta"], sample.get("semantic"), sample.get("acoustic"))
            if len(self.writer.shards) > shards_before:  # the previous shard was closed by this write
                self.counts[Path(self.writer.shards[-1]).name] = self._current
                self._current = (0, 0.0)
            n, sec = self._current
            self._current = (n + 1, sec + float(sample["meta"]["duration"]))

    def on_predict_end(self, trainer, pl_module) -> None:
        shards = self.writer.close()
        if shards and Path(shards[-1]).name not in self.counts:
            self.counts[Path(shards[-1]).name] = self._current
        rank = trainer.global_rank
        self.folder.write_json(f"r{rank}.json", {n: list(c) for n, c in self.counts.items()})
        trainer.strategy.barrier("tokenize-written")
        if trainer.is_global_zero:
            merged: dict[str, list] = {}
            for part in self.folder.names("r*.json"):
                merged.update(json.loads(self.folder.read_text(part) or "{}"))
            self.folder.write_json("index.json", {
                "num_shards": len(merged),
                "num_samples": sum(c for c, _ in merged.values()),
                "total_seconds": round(sum(s for _, s in merged.values()), 3),
                "shards": [{"name": n, "count": c, "seconds": round(s, 3)} for n, (c, s) in sorted(merged.items())],
            })
        trainer.strategy.barrier("tokenize-indexed")


class TokenizeStage(TokenizeSpec, Stage):
    """Encode the recipe's audio shards into token shards with the upstream semantic/acoustic models."""

    def __init__(self, config: TokenizeConfig) -> None:
        super().__init__(config)
        self.models = torch.nn.ModuleDict()  # filled in run() from the upstream stages
        self.sample_rate = 0

    # --- the job -------------------------------------------------------------------------------
    def run(self, ctx: StageContext) -> dict[str, Any]:
        for stream in STREAMS:
            if any(stream in rec.produces for rec in ctx.upstream.values()):
                self.models[stream] = ctx.load_upstream(stream)
        if not self.models:
            raise SoundstageError(f"stage {ctx.name!r}: tokenize needs a stage producing 'semantic' or 'acoustic'")
        self.sample_rate = ctx.data.sample_rate
        for stream, model in self.models.items():
            if int(model.sample_rate) != self.sample_rate:
                raise SoundstageError(
                    f"stage {ctx.name!r}: the {stream} model runs at {model.sample_rate} Hz but data.sample_rate "
                    f"is {self.sample_rate} Hz"
                )
        if not ctx.train_shards:
            raise SoundstageError(f"stage {ctx.name!r}: no audio shards to tokenize")
        self._producers = {s: ctx.upstream_for(s).name for s in self.models}
        self._stage = ctx.name
        outputs: dict[str, Any] = {"streams": {k: v.to_dict() for k, v in self.streams().items()}}
        for split, shards in (("train", ctx.train_shards), ("val", ctx.val_shards)):
            if shards:
                speeds = self.config.speed_perturb if split == "train" else ()
                outputs[f"{split}_tokens"] = str(self.tokenize_split(ctx, shards, self.token_dir(ctx, split), speeds))
        return outputs

    def streams(self) -> dict[str, TokenStream]:
        """The token streams this run writes, from the loaded upstream models (what LM stages check)."""
        out: dict[str, TokenStream] = {}
        if "semantic" in self.models:
            m = self.models["semantic"]
            out["semantic"] = TokenStream("semantic", int(m.vocab_size), float(m.frame_rate), 1, int(m.sample_rate))
        if "acoustic" in self.models:
            codec = self.models["acoustic"]
            levels = int(self.config.num_quantizers or codec.num_quantizers)
            out["acoustic"] = TokenStream("acoustic", int(codec.codebook_size), float(codec.frame_rate), levels,
                                          int(codec.sample_rate))
        return out

    def stream_info(self) -> dict[str, Any]:
        """The per-utterance metadata of the token shards: each stream's rate and size (shard format)."""
        info: dict[str, Any] = {}
        for kind, s in self.streams().items():
            info[f"{kind}_rate"] = s.frame_rate
            if kind == "semantic":
                info["semantic_vocab_size"] = s.vocab_size
            else:
                info["num_quantizers"], info["codebook_size"] = s.levels, s.vocab_size
        return info

    def _check_ids(self, stream: str, ids: torch.Tensor, vocab_size: int) -> None:
        """Every id a producer hands over must lie in its declared vocabulary (else: one line, both names)."""
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
            producer = getattr(self, "_producers", {}).get(stream, stream)
            raise SoundstageError(
                f"stage {getattr(self, '_stage', 'tokenize')!r}: stage {producer!r} made {stream} ids "
                f"{int(ids.min())}..{int(ids.max())}, outside its declared vocab_size {vocab_size} (0..{vocab_size - 1})"
            )

    def token_dir(self, ctx: StageContext, split: str) -> str | Path:
        """Where a split's token shards go: ``<config.output>/<split>`` if set, else the stage's ``tokens/<split>``."""
        if self.config.output:
            return f"{self.config.output.rstrip('/')}/{split}"
        return ctx.stage_dir / "tokens" / split

    def tokenize_split(self, ctx: StageContext, shards: str, out_dir: str | Path, speeds: Sequence[float] = ()) -> str | Path:
        """Encode one split's shards into ``out_dir`` (a folder or object-storage prefix) on every rank, each
        utterance also at each of ``speeds``; returns it."""
        cfg = self.config
        max_samples = int(cfg.max_seconds * self.sample_rate) if cfg.max_seconds else 0
        workers = ctx.data.num_workers if cfg.num_workers is None else cfg.num_workers
        dm = UtteranceDataModule(shards, self.sample_rate, cfg.batch_size, max_samples, workers, speeds)
        writer = TokenWriter(out_dir, cfg.shard_mb * 1e6)
        trainer = ctx.make_trainer(callbacks=[writer], logger=False)
        trainer.predict(self, datamodule=dm, return_predictions=False)
        if dm.skipped.count:
            log.warning("tokenize: skipped %d corrupt audio samples in %s", dm.skipped.count, shards)
        return out_dir

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        wave, lengths = batch["audio"], batch["lengths"]  # [B, T], [B]
        info = self.stream_info()
        tokens: dict[str, torch.Tensor] = {}
        if "semantic" in self.models:
            tokens["semantic"] = self.models["semantic"].encode(wave)  # [B, Ts]
            self._check_ids("semantic", tokens["semantic"], info["semantic_vocab_size"])
        if "acoustic" in self.models:
            tokens["acoustic"] = self.models["acoustic"].encode(wave, num_quantizers=info["num_quantizers"])  # [B, Q, Ta]
            self._check_ids("acoustic", tokens["acoustic"], info["codebook_size"])
        out = []
        for i, key in enumerate(batch["key"]):
            seconds = int(lengths[i]) / self.sample_rate
            meta = {**batch["meta"][i], "key": key, "duration": seconds, "sample_rate": self.sample_rate, **info}
            sample: dict[str, Any] = {"key": key, "meta": meta}
            for stream, t in tokens.items():
                # Frames covering this utterance's real samples (the rest is padding of the batch).
                n = min(t.shape[-1], math.ceil(seconds * info[f"{stream}_rate"] - 1e-6))
                sample[stream] = t[i, ..., :n].cpu().numpy()
            out.append(sample)
        return out
