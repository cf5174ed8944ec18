"""SoundStream reconstruction quality after a fixed training time (the issue's quality run).

Trains the ``soundstream`` stage (a preset, default ``small``) for ``--minutes`` on audio shards
(default: the embedded speech corpus, held-out voices for validation), then reports SI-SNR, mel
distance, multi-resolution STFT distance and STOI (short-time objective intelligibility, 0-1; needs
``pip install pystoi``, the ``bench`` extra) on up to ``--val-clips`` held-out clips, plus on any
``--real-audio`` files (e.g. real speech recordings), and writes for the first clips a PNG of the
input mel-spectrogram above the reconstruction's and both WAVs, for looking and listening.
``--model codec.safetensors`` scores a trained codec instead of training one. A real recording with
its words in ``<name>.txt`` beside it (``fetch_real_speech.py`` writes 19 such) is also transcribed by
pocketsphinx (the ``natural`` extra): WER of the input, of its telephone-band copy and of the
reconstruction. With the ``augment`` extra
installed, the held-out clips are also scored degraded as a microphone would (``held_out_degraded``: each clip
through a room, a tilt, an EQ, noise and a level change, ``data/augment.py`` with ``prob=1``, the same every run),
which tests robustness to recording conditions on voices whose clean scores are known.

    python benchmarks/codec_quality.py --minutes 30 --out runs/codec_quality [--preset small]
        [--train-shards 'dir/train-{000000..000009}.tar' --val-shards '...'] [--hours 0.5]
        [--set batch_size=8 segment_seconds=0.5] [--real-audio a.wav b.flac] [--threads N] [--accelerator cpu]
        [--precision bf16-mixed] [--workers 4]
    python benchmarks/codec_quality.py --model runs/codec_quality/model.safetensors --out runs/rescored [--real-audio ...]
        [--engine kokoro]   # held-out voices of the natural-voice corpus
    python benchmarks/codec_quality.py --model runs/speech_small/codec/model.safetensors --out runs/real \
        --val-clips 0 --real-audio real/*.wav   # only the real recordings (benchmarks/fetch_real_speech.py real/)

Prints one JSON object (also saved as ``<out>/quality.json``); TensorBoard logs go to ``<out>/tb``.
"""
from __future__ import annotations

import argparse
import json
import importlib.util
import time
from datetime import timedelta
from pathlib import Path

import lightning as L
import numpy as np
import soundfile as sf
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image

from soundstage.plugins.codec.metrics import MelDistance, ScaleInvariantSignalNoiseRatio, STFTDistance, bitrate
from soundstage.plugins.codec.presets import preset_config
from soundstage.plugins.codec.stage import SoundStreamStage
from soundstage.plugins.codec.viz import mel_image
from soundstage.plugins.audiolm.evaluation.word_error import WordRecognizer, error_rate, words  # pocketsphinx: lazily


def load_audio(path: str, sample_rate: int) -> torch.Tensor:
    import soxr

    wave, sr = sf.read(path, dtype="float32", always_2d=True)
    wave = wave.mean(1)
    if sr != sample_rate:
        wave = soxr.resample(wave, sr, sample_rate)
    return torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))


def telephone_band(wave: torch.Tensor, sample_rate: int, low: float = 300.0, high: float = 3400.0) -> torch.Tensor:
    """``wave`` [T] with everything outside ``low``-``high`` Hz removed: the STOI control (telephone speech is
    intelligible, so its STOI tells where on the 0-1 scale intelligible lies)."""
    spectrum = torch.fft.rfft(wave)
    freqs = torch.fft.rfftfreq(wave.numel(), 1.0 / sample_rate)
    return torch.fft.irfft(spectrum * ((freqs >= low) & (freqs <= high)), n=wave.numel())


def sidecar_text(path: str) -> str | None:
    """The words of ``path`` from ``<path without suffix>.txt`` (the layout ``fetch_real_speech.py`` writes)."""
    text = Path(path).with_suffix(".txt")
    return text.read_text().strip() if text.is_file() else None


class WordErrors:
    """pocketsphinx WER of the input, its telephone-band copy (the control) and the reconstruction."""

    ROWS = ("input", "telephone_band_control", "reconstruction")

    def __init__(self, sample_rate: int) -> None:
        self.recognizer = WordRecognizer(sample_rate)
        self.refs: list[list[str]] = []
        self.hyps: dict[str, list[list[str]]] = {row: [] for row in self.ROWS}

    def update(self, text: str, *waves: torch.Tensor) -> None:
        self.refs.append(words(text))
        for row, wave in zip(self.ROWS, waves):
            self.hyps[row].append(self.recognizer.transcribe(wave.numpy()))

    def compute(self) -> dict:
        return {"utterances": len(self.refs), "reference_words": sum(map(len, self.refs)),
                **{f"wer_{row}": round(error_rate(self.hyps[row], self.refs), 4) for row in self.ROWS}}


@torch.no_grad()
def evaluate(stage: SoundStreamStage, clips: list[tuple[str, torch.Tensor]], out: Path, pictures: int,
             texts: dict[str, str] | None = None) -> dict:
    """Metrics over ``clips`` [(name, wave [T])]; PNG + WAVs for the first ``pictures`` of them. With ``texts``
    (name -> words) and pocketsphinx installed, also the word error rates of ``WordErrors``."""
    sr = stage.sample_rate
    wer = WordErrors(sr) if texts and importlib.util.find_spec("pocketsphinx") else None
    si_snr, mel, stft = ScaleInvariantSignalNoiseRatio(), MelDistance(sr), STFTDistance(sr)
    stoi = None
    if importlib.util.find_spec("pystoi"):  # torchmetrics' STOI wraps pystoi
        from torchmetrics.audio import ShortTimeObjectiveIntelligibility

        stoi, stoi_telephone = ShortTimeObjectiveIntelligibility(sr), ShortTimeObjectiveIntelligibility(sr)
    out.mkdir(parents=True, exist_ok=True)
    for i, (name, x) in enumerate(clips):
        y = stage.decode(stage.encode(x.view(1, -1)), length=x.numel())[0]
        si_snr.update(y.view(1, -1), x.view(1, -1))
        mel.update(y.view(1, -1), x.view(1, -1))
        stft.update(y.view(1, -1), x.view(1, -1))
        if stoi is not None:
            stoi.update(y.view(1, -1), x.view(1, -1))
            stoi_telephone.update(telephone_band(x, sr).view(1, -1), x.view(1, -1))
        if wer is not None and texts.get(name):
            wer.update(texts[name], x, telephone_band(x, sr), y.clamp(-1, 1))
        if i < pictures:
            stem = out / f"{i:02d}_{Path(name).stem}"
            image = Image.fromarray(mel_image([x, y], sr).numpy())  # 1 pixel per mel bin and frame: enlarged 3x
            image.resize((3 * image.width, 3 * image.height), Image.NEAREST).save(f"{stem}_mel_input_over_reconstruction.png")
            sf.write(f"{stem}_input.wav", x.numpy(), sr)
            sf.write(f"{stem}_reconstruction.wav", y.clamp(-1, 1).numpy(), sr)
    result = {"clips": len(clips), "si_snr_db": round(float(si_snr.compute()), 3),
              "mel_distance": round(float(mel.compute()), 4), "stft_distance": round(float(stft.compute()), 4),
              "stoi": "not measured: pip install pystoi"}
    if stoi is not None:
        result.update(stoi=round(float(stoi.compute()), 4),
                      stoi_telephone_band_control=round(float(stoi_telephone.compute()), 4))
    if texts:
        result["words"] = wer.compute() if wer else "not measured: pip install 'soundstage[natural]' (pocketsphinx)"
    return result


def degrade(clips: list[tuple[str, torch.Tensor]], sample_rate: int) -> list[tuple[str, torch.Tensor]]:
    """Each clip through the training augmentation at ``prob=1`` (default ranges), seeded by its name."""
    import random

    from soundstage.data.augment import AugmentConfig, Augmenter

    augment = Augmenter(AugmentConfig(prob=1.0), sample_rate)
    return [(name, torch.from_numpy(augment(x.numpy(), random.Random(f"degrade-{name}")))) for name, x in clips]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides on top of the preset, e.g. batch_size=8 segment_seconds=0.5")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--out", default="runs/codec_quality")
    parser.add_argument("--train-shards")
    parser.add_argument("--val-shards")
    parser.add_argument("--hours", type=float, default=0.5, help="size of the embedded speech corpus if no shards")
    parser.add_argument("--engine", default="espeak", help="what reads the embedded corpus: espeak or kokoro")
    parser.add_argument("--val-clips", type=int, default=64)
    parser.add_argument("--pictures", type=int, default=4)
    parser.add_argument("--real-audio", nargs="*", default=[])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--precision", default="32-true", help="Lightning precision, e.g. bf16-mixed on a GPU")
    parser.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="score this trained codec (.safetensors) instead of training one")
    parser.add_argument("--no-degraded", action="store_true", help="skip the degraded copy of the held-out clips")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    L.seed_everything(args.seed)
    out = Path(args.out)

    from omegaconf import OmegaConf

    if args.model:
        stage = SoundStreamStage.load_pretrained(args.model)
        config = stage.config
    else:
        config = preset_config(args.preset, **OmegaConf.to_container(OmegaConf.from_dotlist(args.set)))
        stage = SoundStreamStage(config)
    from soundstage.recipe_schema import DataConfig, TrainerConfig
    from soundstage.stage import StageContext

    data = DataConfig(sample_rate=config.sample_rate, corpus="speech", engine=args.engine, hours=args.hours,
                      num_workers=args.workers)
    train, val = args.train_shards, args.val_shards
    if train is None:
        from soundstage.data.corpus import prepare_corpus

        train, val = prepare_corpus(data)
    # the datamodule the pipeline would build for this stage (crops, hop alignment, augmentation)
    ctx = StageContext(name="codec", stage_dir=out, run_dir=out, data=data, trainer=TrainerConfig(), seed=args.seed,
                       train_shards=train, val_shards=val)
    dm = stage.build_datamodule(ctx)
    start, updates = time.time(), None
    if not args.model:
        trainer = L.Trainer(accelerator=args.accelerator, devices=1, precision=args.precision,
                            max_time=timedelta(minutes=args.minutes),
                            logger=TensorBoardLogger(out, name="tb"), enable_checkpointing=False,
                            limit_val_batches=2, log_every_n_steps=10,
                            callbacks=[TQDMProgressBar(refresh_rate=10)])  # time-limited: Rich shows 'Epoch 3/-2'
        trainer.fit(stage, dm)
        stage.save_pretrained(out / "model.safetensors")
        updates = trainer.global_step // 2  # Lightning counts the generator and the discriminator step
    train_seconds = time.time() - start

    stage = stage.cpu().eval()
    dm.val_segment_samples = 0  # whole held-out utterances for the final numbers
    held_out = []
    for batch in dm.val_dataloader() if args.val_clips > 0 else []:  # --val-clips 0: only the real recordings
        for key, wave, n in zip(batch["key"], batch["audio"], batch["lengths"]):
            held_out.append((key, wave[: int(n)]))
        if len(held_out) >= args.val_clips:
            break
    result = {
        "model": args.model or "trained here",
        "preset": None if args.model else args.preset,
        "overrides": None if args.model else args.set,
        "device": torch.cuda.get_device_name() if args.accelerator != "cpu" and torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        "precision": args.precision,
        "train_minutes": updates and round(train_seconds / 60, 2),
        "generator_updates": updates,
        "train_audio_hours": updates and round(updates * config.batch_size * config.segment_seconds / 3600, 3),
        "bitrate_kbps": bitrate(config.num_quantizers, config.codebook_size, stage.frame_rate) / 1000,
    }
    if held_out:
        result["held_out"] = evaluate(stage, held_out[: args.val_clips], out / "held_out", args.pictures)
    if held_out and not args.no_degraded and importlib.util.find_spec("audiomentations"):
        degraded = degrade(held_out[: args.val_clips], config.sample_rate)
        result["held_out_degraded"] = evaluate(stage, degraded, out / "held_out_degraded", args.pictures)
    if args.real_audio:
        real = [(p, load_audio(p, config.sample_rate)) for p in args.real_audio]
        texts = {p: text for p in args.real_audio if (text := sidecar_text(p))}
        result["real_audio"] = evaluate(stage, real, out / "real_audio", args.pictures, texts)
    (out / "quality.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
