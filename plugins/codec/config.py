"""The codec stage's configuration: generator, residual VQ, discriminators, losses, schedule, data."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from soundstage.config import check_ranges
from soundstage.data.augment_config import AugmentConfig
from soundstage.stage_spec import StageConfig


@dataclass
class SoundStreamConfig(StageConfig):
    """SoundStream codec + GAN training. Defaults are the ``small`` preset (see ``presets.py``)."""

    # generator: "seanet" (SoundStream's sample-rate convolutions; causal ones stream) or "vocos" (frame-rate
    # ConvNeXt blocks, STFT in, iSTFT out; non-causal; several times the updates per CPU hour, see vocos.py)
    architecture: str = "seanet"
    sample_rate: int = 16000  # must equal the recipe's data.sample_rate
    channels: int = 16  # encoder channels, doubled by each block (16 -> 256 at 50 Hz)
    decoder_channels: int = 16  # decoder channels after the last block, doubled going up
    strides: list[int] = field(default_factory=lambda: [2, 4, 5, 8])  # hop = product (320 -> 50 Hz at 16 kHz)
    latent_dim: int = 64
    dilations: list[int] = field(default_factory=lambda: [1, 3, 9])
    kernel_size: int = 7
    vocos_dim: int = 384  # vocos only (hop = prod(strides) as for seanet): ConvNeXt width
    vocos_encoder_layers: int = 4  # vocos: ConvNeXt blocks of the encoder
    vocos_decoder_layers: int = 8  # vocos: ConvNeXt blocks of the decoder
    vocos_ff_mult: int = 3  # vocos: MLP width / vocos_dim
    vocos_n_fft: int = 0  # vocos: STFT size of the encoder's input and the decoder's inverse (0: 4 x hop)
    causal: bool = True  # causal padding (streamable) or centred
    activation: str = "elu"  # elu | snake (periodic, as in DAC: 1.3x the CPU time per update; speech_small uses it)
    # residual VQ
    num_quantizers: int = 8
    codebook_size: int = 1024
    ema_decay: float = 0.99
    kmeans_iters: int = 10
    # restart a code once the batches since its last use held dead_code_hits x codebook_size vectors (an evenly
    # used code would have been hit dead_code_hits times); 0: never. Independent of batch size and GPU count.
    dead_code_hits: float = 8.0
    # share of items decoded from a random number of levels (one model for several bitrates; docs/codec.md)
    quantizer_dropout: float = 0.1
    commitment_weight: float = 1.0
    # discriminators
    stft_disc_ffts: list[int] = field(default_factory=lambda: [1024, 512, 256])
    stft_disc_channels: int = 16
    wave_disc_scales: int = 3
    wave_disc_channels: int = 16
    disc_max_channels: int = 256
    # losses (weights of the generator terms; with balancer=True they are shares of the gradient)
    mel_ffts: list[int] = field(default_factory=lambda: [64, 128, 256, 512, 1024, 2048])
    mel_bins: list[int] = field(default_factory=lambda: [10, 20, 40, 80, 80, 80])
    mel_weight: float = 15.0
    stft_weight: float = 0.0
    # L1 between waveforms (EnCodec's time-domain term): keeps the phase (docs/codec.md: how the weight was
    # chosen). A mean over samples, so its weight is large; with balancer=True use ~1 (EnCodec: 0.1 vs mel 1).
    waveform_weight: float = 500.0
    adversarial_weight: float = 1.0
    feature_weight: float = 2.0
    balancer: bool = False  # EnCodec-style gradient balancer over the generator terms
    # Semantic distillation (SpeechTokenizer, Zhang et al. 2023; Mimi): the first RVQ level's vectors also
    # predict the semantic tokenizer's id of their frame (a linear head, cross-entropy with this weight),
    # so level 0 carries what is said and the coarse LM can read it off the semantic ids. 0: off; above 0
    # the stage needs the semantic tokenizer (recipe `needs`), whose vocabulary is semantic_vocab_size.
    semantic_weight: float = 0.0
    semantic_vocab_size: int = 0  # with semantic_weight > 0: the semantic tokenizer's vocabulary (checked at validation)
    # GAN schedule, in generator updates. Before ``adversarial_start_step`` the discriminators are not run at
    # all (no D forward/backward): the generator learns from the mel/spectral losses only, which is several
    # times cheaper per step (~4x for ``small`` on CPU) and gets intelligible reconstructions early. From then
    # on the discriminators train every step; the generator's adversarial + feature-matching terms start
    # ``disc_warmup_steps`` later (so they are on from ``adversarial_start_step + disc_warmup_steps``).
    adversarial_start_step: int = 5000
    disc_warmup_steps: int = 500
    # optimization (Trainer's own gradient_clip_val / accumulate_grad_batches do not apply here)
    lr: float = 1e-3
    disc_lr: float = 3e-4
    betas: list[float] = field(default_factory=lambda: [0.8, 0.99])
    lr_warmup_steps: int = 100  # linear learning-rate warm-up (generator updates) for both optimizers
    lr_decay: float = 0.99999  # exponential decay per generator update, after the warm-up
    # cosine anneal to min_lr_ratio x the LR over the last share of the training budget (max_steps or
    # max_time, whichever runs out first); 0: none. Time-budgeted recipes end at a low LR (docs/codec.md)
    lr_anneal_fraction: float = 0.0
    min_lr_ratio: float = 0.05
    gen_grad_clip: Optional[float] = 1000.0
    disc_grad_clip: Optional[float] = 10.0
    accumulate_grad_batches: int = 1
    # data
    batch_size: int = 16
    segment_seconds: float = 1.0
    val_segment_seconds: float = 4.0
    batches_per_epoch: Optional[int] = None
    # microphone-like degradations (room, tilt, EQ, noise, level) of a share of the training crops; off by default
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # speed: torch.compile the encoder, decoder and discriminators in place (the quantizer, with its
    # data-dependent codebook updates, stays eager). For GPU training; streaming encode/decode is eager-only.
    compile: bool = False
    # logging
    log_audio_clips: int = 2  # validation clips written to TensorBoard (audio + mel images)

    def __post_init__(self) -> None:  # a bad value fails when the recipe is read, not hours into training
        check_ranges(
            self,
            at_least_one=("vocos_dim", "vocos_ff_mult", "channels", "decoder_channels", "strides", "latent_dim", "dilations", "kernel_size",
                          "num_quantizers", "codebook_size", "stft_disc_ffts", "stft_disc_channels",
                          "wave_disc_channels", "disc_max_channels", "mel_ffts", "mel_bins",
                          "accumulate_grad_batches", "batch_size", "batches_per_epoch"),
            positive=("sample_rate", "segment_seconds", "val_segment_seconds", "lr", "disc_lr", "gen_grad_clip",
                      "disc_grad_clip"),
            non_negative=("vocos_encoder_layers", "vocos_decoder_layers", "vocos_n_fft", "kmeans_iters", "dead_code_hits", "commitment_weight", "mel_weight", "stft_weight",
                          "waveform_weight", "adversarial_weight", "feature_weight", "semantic_weight", "adversarial_start_step",
                          "disc_warmup_steps", "lr_warmup_steps", "wave_disc_scales", "log_audio_clips"),
            fraction=("ema_decay", "quantizer_dropout", "lr_decay", "betas", "lr_anneal_fraction", "min_lr_ratio"),
        )
        if self.semantic_weight > 0 and self.semantic_vocab_size < 1:
            raise ValueError("semantic_weight > 0 needs semantic_vocab_size (the semantic tokenizer's vocabulary)")
        if self.architecture not in ("seanet", "vocos"):
            raise ValueError(f"codec architecture {self.architecture!r}: expected 'seanet' or 'vocos'")
