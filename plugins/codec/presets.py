"""Named sizes of the SoundStream stage, as overrides of ``SoundStreamConfig``'s defaults (= ``small``).

``tiny`` trains on a laptop CPU in minutes, ``small`` in CPU hours or on one GPU (16 base channels, so a
reconstruction-only update at batch 8 x 0.5 s takes ~0.43 s on one CPU core, ~0.24 s on two; its first 5000
updates are reconstruction-only, see ``adversarial_start_step``, and a GAN update costs ~3x that), ``paper`` is
SoundStream/AudioLM's 16 kHz codec: strides (2, 4, 5, 8) -> 50 Hz, 12 levels x 1024 codes = 6 kbps.
Recipes set the same keys under a stage's ``config:``; ``preset_config`` is for code and benchmarks.
"""
from __future__ import annotations

from typing import Any

from soundstage.config import build_config

from .config import SoundStreamConfig

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        channels=8, decoder_channels=8, strides=[2, 4, 5, 8], latent_dim=32, dilations=[1, 3],
        num_quantizers=4, codebook_size=256,
        stft_disc_ffts=[512, 256], stft_disc_channels=8, wave_disc_scales=1, wave_disc_channels=8,
        disc_max_channels=128, mel_ffts=[128, 256, 512, 1024], mel_bins=[20, 40, 64, 64],
        lr=1e-3, disc_lr=1e-3, lr_warmup_steps=20, lr_decay=1.0, adversarial_start_step=100, disc_warmup_steps=0,
        batch_size=8, segment_seconds=0.5, val_segment_seconds=2.0,
    ),
    "small": {},  # = SoundStreamConfig defaults
    "paper": dict(
        channels=32, decoder_channels=40, latent_dim=128, num_quantizers=12, codebook_size=1024,
        stft_disc_ffts=[2048, 1024, 512], stft_disc_channels=32, wave_disc_scales=3, wave_disc_channels=16,
        disc_max_channels=1024, mel_ffts=[32, 64, 128, 256, 512, 1024, 2048], mel_bins=[5, 10, 20, 40, 80, 160, 320],
        lr=1e-4, disc_lr=1e-4, lr_warmup_steps=0, lr_decay=0.999996, adversarial_start_step=0, disc_warmup_steps=0,
        waveform_weight=0.0, quantizer_dropout=0.5, batch_size=32, segment_seconds=1.0,
    ),
}


def preset_config(name: str, **overrides: Any) -> SoundStreamConfig:
    """The ``SoundStreamConfig`` of preset ``name`` (tiny | small | paper) with ``overrides`` on top."""
    if name not in PRESETS:
        raise KeyError(f"unknown soundstream preset {name!r} (known: {', '.join(PRESETS)})")
    return build_config(SoundStreamConfig, {**PRESETS[name], **overrides}, where=f"soundstream[{name}]")
