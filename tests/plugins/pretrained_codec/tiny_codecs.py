"""Tiny randomly initialised EnCodec, DAC and Mimi checkpoints, written with ``save_pretrained`` (no downloads).

Their rates are those of the published models (EnCodec and Mimi at 24 kHz, DAC at 16 kHz), so a
16 kHz pipeline exercises both the resampling and the same-rate path; only the widths are tiny.
"""
from __future__ import annotations

from pathlib import Path

import torch

FAMILIES = ("encodec", "dac", "mimi")
# family -> (codec sample rate, frame rate, codebook size, levels)
FACTS = {"encodec": (24000, 75.0, 64, 4), "dac": (16000, 50.0, 64, 4), "mimi": (24000, 12.5, 64, 4)}


def tiny_model(family: str, seed: int = 0) -> torch.nn.Module:
    """An untrained model of ``family`` with the published rates and tiny widths."""
    import transformers as tf

    torch.manual_seed(seed)
    if family == "encodec":  # 24 kHz, hop 320: 75 Hz; 64 codes = 6 bits: 450 bps per level, 1.8 kbps = 4 levels
        config = tf.EncodecConfig(sampling_rate=24000, upsampling_ratios=[8, 5, 4, 2], num_filters=4, hidden_size=16,
                                  codebook_size=64, codebook_dim=16, num_lstm_layers=1, target_bandwidths=[0.9, 1.8])
        return tf.EncodecModel(config)
    if family == "dac":  # 16 kHz, hop 320: 50 Hz (as descript/dac_16khz)
        config = tf.DacConfig(sampling_rate=16000, downsampling_ratios=[2, 4, 5, 8], encoder_hidden_size=4,
                              decoder_hidden_size=16, n_codebooks=4, codebook_size=64, codebook_dim=4)
        return tf.DacModel(config)
    if family == "mimi":  # 24 kHz, SEANet hop 960 (25 Hz) then a stride-2 downsample: 12.5 Hz
        config = tf.MimiConfig(sampling_rate=24000, upsampling_ratios=[8, 6, 5, 4], hidden_size=16, num_filters=4,
                               codebook_size=64, codebook_dim=16, num_quantizers=4, vector_quantization_hidden_dimension=16,
                               num_hidden_layers=1, intermediate_size=32, num_attention_heads=2, num_key_value_heads=2,
                               upsample_groups=16, sliding_window=32, max_position_embeddings=512)
        return tf.MimiModel(config)
    raise ValueError(family)


def save_tiny(family: str, directory: Path, seed: int = 0) -> Path:
    """Write a tiny ``family`` checkpoint (config.json + model.safetensors) into ``directory``."""
    model = tiny_model(family, seed).eval()
    model.save_pretrained(directory, safe_serialization=True)
    return directory
