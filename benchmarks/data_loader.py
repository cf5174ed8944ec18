"""Can loading starve training? AudioDataModule throughput vs. the consumption of a tiny codec step.

Measures samples/s and audio-seconds/s delivered by ``AudioDataModule`` with 0/1/2 workers on the
embedded speech corpus (or ``--shards``), and the audio-seconds/s a training step of the tiny
SoundStream preset consumes (a small conv encoder-decoder if the codec plugin is missing).
Prints JSON; ``ratio`` > 1 means the loader keeps up.

``--restarts N`` also times the start of each of N epochs (``iter()`` to the first batch) with 2
workers that are started anew every epoch vs workers that persist (what the datamodules use), in a
process that holds ``speech_small``'s codec and its optimizer state, as a training process does:
starting a worker forks that process.

    python benchmarks/data_loader.py --batches 40 --workers 0,1,2
    python benchmarks/data_loader.py --workers 2 --restarts 6
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from typing import Any

import lightning as L
import torch


def bench_loader(train: str, sample_rate: int, batch_size: int, segment: int, workers: int, batches: int) -> dict:
    """Time one epoch of ``batches`` training batches (first batch reported separately as startup)."""
    from soundstage.data.audio_datamodule import AudioDataModule

    dm = AudioDataModule(train, None, sample_rate, batch_size, segment, num_workers=workers,
                         batches_per_epoch=batches + 1, shuffle_buffer=64)
    t0 = time.perf_counter()
    it = iter(dm.train_dataloader())
    next(it)
    t1 = time.perf_counter()
    n, audio_seconds = 0, 0.0
    for batch in it:
        n += batch["audio"].shape[0]
        audio_seconds += float(batch["lengths"].sum()) / sample_rate
    t2 = time.perf_counter()
    return {"workers": workers, "startup_s": round(t1 - t0, 3), "samples_per_s": round(n / (t2 - t1), 1),
            "audio_seconds_per_s": round(audio_seconds / (t2 - t1), 1), "batches": batches}


class StepTimer(L.Callback):
    """Records the wall time of every training step."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._t = 0.0

    def on_train_batch_start(self, *args: Any) -> None:
        self._t = time.perf_counter()

    def on_train_batch_end(self, *args: Any) -> None:
        self.times.append(time.perf_counter() - self._t)


class ConvAutoencoder(L.LightningModule):
    """Fallback consumer when the codec plugin is missing: strided conv encoder-decoder, L1 loss."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = torch.nn.Sequential(torch.nn.Conv1d(1, 16, 8, 4, 2), torch.nn.ELU(), torch.nn.Conv1d(16, 32, 8, 4, 2))
        self.dec = torch.nn.Sequential(torch.nn.ConvTranspose1d(32, 16, 8, 4, 2), torch.nn.ELU(),
                                       torch.nn.ConvTranspose1d(16, 1, 8, 4, 2))

    def training_step(self, batch, batch_idx):
        x = batch["audio"][:, None]  # [B, 1, T]
        y = self.dec(self.enc(x))[..., : x.shape[-1]]
        return torch.nn.functional.l1_loss(y, x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), 1e-3)


def bench_codec_step(sample_rate: int, batch_size: int, segment: int, steps: int, warmup: int = 2) -> dict:
    """Seconds per training step of the tiny codec (real Lightning fit on in-memory batches)."""
    try:
        from soundstage.plugins.codec.presets import preset_config
        from soundstage.plugins.codec.stage import SoundStreamStage

        model: L.LightningModule = SoundStreamStage(preset_config(
            "tiny", sample_rate=sample_rate, batch_size=batch_size, segment_seconds=segment / sample_rate))
        name = "soundstream[tiny]"
    except ImportError:
        model, name = ConvAutoencoder(), "conv encoder-decoder (codec plugin missing)"
    data = [{"audio": 0.1 * torch.randn(batch_size, segment), "lengths": torch.full((batch_size,), segment),
             "key": [str(i) for i in range(batch_size)]} for _ in range(warmup + steps)]
    loader = torch.utils.data.DataLoader(data, batch_size=None)

    timer = StepTimer()
    # one epoch over the batches (max_steps would count both of the codec's optimizers)
    trainer = L.Trainer(accelerator="auto", devices=1, max_epochs=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[timer], num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, train_dataloaders=loader)
    step_s = sum(timer.times[warmup:]) / max(len(timer.times[warmup:]), 1)
    return {"model": name, "step_s": round(step_s, 4), "samples_per_s": round(batch_size / step_s, 1),
            "audio_seconds_per_s": round(batch_size * segment / sample_rate / step_s, 1), "steps": steps}


def bench_restarts(train: str, sample_rate: int, batch_size: int, segment: int, epochs: int) -> dict:
    """Seconds from ``iter()`` to the first batch of epochs 2..``epochs``, workers restarted vs persistent."""
    import resource

    from omegaconf import OmegaConf

    from soundstage.data.audio_datamodule import AudioDataModule
    from soundstage.data.stream import EpochDataLoader
    from soundstage.optim import adamw
    from soundstage.plugins.codec.presets import preset_config
    from soundstage.plugins.codec.stage import SoundStreamStage
    from soundstage.recipe import find_recipe

    config = OmegaConf.to_container(OmegaConf.load(find_recipe("speech_small")).stages.codec.config)
    config.pop("augment", None)
    stage = SoundStreamStage(preset_config("small", **config))  # a training process's weight
    opt = adamw(stage.parameters(), lr=1e-4)
    for p in stage.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # its optimizer state too
    stream = AudioDataModule(train, None, sample_rate, batch_size, segment, num_workers=2, batches_per_epoch=4,
                             shuffle_buffer=64).train_dataloader().dataset
    out: dict[str, Any] = {"parent_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    for persistent in (False, True):
        loader = EpochDataLoader(stream, batch_size=None, num_workers=2, prefetch_factor=2,
                                 persistent_workers=persistent)
        starts = []
        for _ in range(epochs):
            t0 = time.perf_counter()
            it = iter(loader)
            next(it)
            starts.append(time.perf_counter() - t0)
            for _ in it:
                pass
        out["persistent" if persistent else "restarted"] = round(sum(starts[1:]) / max(1, len(starts) - 1), 3)
        del loader
    out["restarted_over_persistent"] = round(out["restarted"] / max(out["persistent"], 1e-9), 2)
    out["epochs"] = epochs
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", help="audio shards to read (default: a fresh embedded speech corpus)")
    parser.add_argument("--hours", type=float, default=0.02, help="size of the generated corpus")
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--segment-seconds", type=float, default=0.5)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--codec-steps", type=int, default=5)
    parser.add_argument("--restarts", type=int, default=0, help="also time N epoch starts, workers restarted vs persistent")
    args = parser.parse_args()

    segment = int(args.segment_seconds * args.sample_rate)
    with tempfile.TemporaryDirectory() as tmp:
        train = args.shards
        if not train:
            from soundstage.data.speech_corpus import synthesize_speech

            index = synthesize_speech(tmp, args.hours, sample_rate=args.sample_rate, progress=False)["train"]
            train = f"{tmp}/train/{index['pattern']}"
        loaders = [bench_loader(train, args.sample_rate, args.batch_size, segment, int(w), args.batches)
                   for w in args.workers.split(",")]
        restarts = bench_restarts(train, args.sample_rate, args.batch_size, segment, args.restarts) if args.restarts else None
    consumer = bench_codec_step(args.sample_rate, args.batch_size, segment, args.codec_steps)
    result = {
        "host": {"cpus": torch.get_num_threads(), "cuda": torch.cuda.is_available(), "python": platform.python_version()},
        "setup": {"batch_size": args.batch_size, "segment_seconds": args.segment_seconds, "sample_rate": args.sample_rate},
        "loader": loaders,
        "consumer": consumer,
        "ratio_loader_over_consumer": {
            str(r["workers"]): round(r["audio_seconds_per_s"] / consumer["audio_seconds_per_s"], 2) for r in loaders
        },
    }
    if restarts is not None:
        result["epoch_start_s"] = restarts
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
