"""Builds the codec generator a stage config names."""
from __future__ import annotations

import math

from .config import SoundStreamConfig
from .model import CodecGenerator, SoundStream
from .vocos import VocosCodec


def build_generator(c: SoundStreamConfig) -> CodecGenerator:
    """The generator a ``SoundStreamConfig`` names (``architecture``: seanet | vocos)."""
    vq = dict(decay=c.ema_decay, kmeans_iters=c.kmeans_iters, dead_code_hits=c.dead_code_hits,
              quantizer_dropout=c.quantizer_dropout)
    if c.architecture == "vocos":
        hop = math.prod(c.strides)
        return VocosCodec(c.sample_rate, hop, c.vocos_n_fft or 4 * hop, c.vocos_dim, c.vocos_encoder_layers,
                          c.vocos_decoder_layers, c.vocos_ff_mult, c.latent_dim, c.num_quantizers,
                          c.codebook_size, **vq)
    return SoundStream(c.sample_rate, c.channels, c.decoder_channels, list(c.strides), c.latent_dim,
                       list(c.dilations), c.kernel_size, c.causal, c.activation, c.num_quantizers,
                       c.codebook_size, **vq)
