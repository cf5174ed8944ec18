"""In-memory synthetic audio for the codec tests: harmonic tones with vibrato and envelopes, in
AudioDataModule's batch format ({"audio" [B, T], "lengths" [B], "key"})."""
from __future__ import annotations

import math

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from soundstage.plugins.codec.presets import preset_config


def synth_clip(seed: int, num_samples: int, sample_rate: int = 16000) -> torch.Tensor:
    """A deterministic voiced-sound-like clip [T]: a few harmonics of a gliding f0 under a smooth envelope."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(num_samples) / sample_rate
    f0 = 100 + 150 * torch.rand((), generator=g)
    glide = 1 + 0.2 * torch.sin(2 * math.pi * (0.5 + torch.rand((), generator=g)) * t)
    phase = 2 * math.pi * torch.cumsum(f0 * glide, 0) / sample_rate
    wave = sum(torch.sin(k * phase) / k for k in range(1, 6))
    env = 0.5 - 0.5 * torch.cos(2 * math.pi * (1 + 2 * torch.rand((), generator=g)) * t)
    noise = 0.02 * torch.randn(num_samples, generator=g)
    return (0.3 * env * wave + noise).float()


class SynthClips(Dataset):
    def __init__(self, n: int, num_samples: int, seed: int = 0, sample_rate: int = 16000) -> None:
        self.n, self.num_samples, self.seed, self.sample_rate = n, num_samples, seed, sample_rate

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        audio = synth_clip(self.seed * 100003 + i, self.num_samples, self.sample_rate)
        return {"audio": audio, "lengths": torch.tensor(self.num_samples), "key": f"synth{i:04d}"}


class SynthAudioDataModule(L.LightningDataModule):
    """Synthetic clips; ``seed_by_rank`` gives every DDP rank different audio."""

    def __init__(self, batch_size: int = 4, num_samples: int = 8000, n_train: int = 32, n_val: int = 4,
                 seed: int = 0, seed_by_rank: bool = False) -> None:
        super().__init__()
        self.batch_size, self.num_samples, self.n_train, self.n_val = batch_size, num_samples, n_train, n_val
        self.seed, self.seed_by_rank = seed, seed_by_rank

    def train_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if (self.seed_by_rank and self.trainer is not None) else 0
        ds = SynthClips(self.n_train, self.num_samples, seed=self.seed + 1 + rank)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(SynthClips(self.n_val, self.num_samples, seed=10_000), batch_size=self.batch_size)


class DumpStateOnTrainEnd(L.Callback):
    """Writes each rank's final weights and buffers to ``<folder>/rank<r>.safetensors`` (for DDP sync tests)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in pl_module.state_dict().items()}
        save_file(state, f"{self.folder}/rank{trainer.global_rank}.safetensors")


def micro_config(**overrides):
    """Smaller than ``tiny``: a few seconds of CPU for a whole fit."""
    base = dict(channels=4, decoder_channels=4, strides=[2, 4, 5], latent_dim=8, dilations=[1, 3],
                num_quantizers=3, codebook_size=32, stft_disc_ffts=[128], stft_disc_channels=4,
                wave_disc_scales=1, wave_disc_channels=4, disc_max_channels=16,
                mel_ffts=[64, 256], mel_bins=[16, 32], batch_size=4, segment_seconds=0.25, log_audio_clips=1,
                adversarial_start_step=0, lr_warmup_steps=0)
    return preset_config("tiny", **{**base, **overrides})
