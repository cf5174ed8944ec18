"""The SoundStorm stage's configs (torch-free: ``recipe validate`` and ``soundstage plugins`` read them)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from soundstage.config import check_ranges
from soundstage.plugins.lm.configs import LMConfig, TransformerConfig


@dataclass
class SoundStormModelConfig:
    """Architecture of the SoundStorm network (token sizes and the window length come from the stage)."""

    block: str = "conformer"  # conformer | transformer (pre-norm attention + MLP blocks, no convolution)
    d_model: int = 1024
    n_layer: int = 12
    n_head: int = 16
    ff_mult: float = 4.0  # hidden width of each feed-forward layer = ff_mult * d_model
    conv_kernel: int = 5  # depthwise convolution kernel of the Conformer's convolution module (frames, odd)
    norm: str = "layernorm"  # layernorm | rmsnorm
    rope_base: float = 10000.0  # rotary position embedding base
    dropout: float = 0.0
    bias: bool = False  # biases in linear layers and norms
    activation_checkpointing: bool = False  # recompute blocks in backward to save memory
    compile: bool = False  # torch.compile the network in place when the stage is built (for training)

    def __post_init__(self) -> None:
        check_ranges(self, at_least_one=("d_model", "n_layer", "n_head", "conv_kernel"), positive=("ff_mult", "rope_base"),
                     fraction=("dropout",))
        if self.block not in ("conformer", "transformer"):
            raise ValueError(f"block must be 'conformer' or 'transformer', got {self.block!r}")
        if self.conv_kernel % 2 == 0:
            raise ValueError(f"conv_kernel must be odd (centred 'same' convolution), got {self.conv_kernel}")
        if self.d_model % self.n_head or (self.d_model // self.n_head) % 2:
            raise ValueError(f"d_model ({self.d_model}) / n_head ({self.n_head}) must be an even whole number (rotary)")

    def transformer_config(self, max_frames: int) -> "TransformerConfig":
        """The LM transformer's config for the shared attention / MLP / norm modules."""
        return TransformerConfig(d_model=self.d_model, n_layer=self.n_layer, n_head=self.n_head, ff_mult=self.ff_mult,
                                 block_size=max_frames, norm=self.norm, rope_base=self.rope_base, dropout=self.dropout,
                                 bias=self.bias)


@dataclass
class DecodingConfig:
    """How ``generate`` unmasks tokens (sampling temperature / top-k / top-p live in ``sampling``)."""

    # Forward passes per RVQ level, coarse to fine; the last entry repeats for the remaining levels.
    # The paper: 16 for the first level, 1 (greedy) for each of the others.
    iterations: list[int] = field(default_factory=lambda: [16, 1])
    # Gumbel noise on the log-confidence that picks which sampled tokens to keep (MaskGIT's "choice
    # temperature"), annealed linearly to 0 over a level's passes; 0 keeps the most confident ones.
    choice_temperature: float = 1.0
    # Sliding windows: seconds at the end of one window that prompt the next (None: half a window).
    context_seconds: Optional[float] = None

    def __post_init__(self) -> None:
        if not self.iterations:
            raise ValueError("iterations must list at least one number of passes")
        check_ranges(self, at_least_one=("iterations",), non_negative=("choice_temperature",), positive=("context_seconds",))

    def per_level(self, num_quantizers: int) -> list[int]:
        """Passes for each of ``num_quantizers`` levels."""
        its = list(self.iterations)[:num_quantizers]
        return its + [its[-1]] * (num_quantizers - len(its))


@dataclass
class SoundStormConfig(LMConfig):
    """SoundStorm (Borsos et al. 2023). Defaults are the ``paper`` preset (see ``presets.py``)."""

    model: SoundStormModelConfig = field(default_factory=SoundStormModelConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    semantic_vocab_size: int = 1024
    codebook_size: int = 1024
    num_quantizers: int = 12  # RVQ levels generated: all of the codec's (as the tokens stage wrote them)
    semantic_rate: float = 25.0  # semantic tokens per second
    acoustic_rate: float = 50.0  # codec frames per second
    # Training window, and the longest stretch decoded at once: longer audio slides window by window.
    window_seconds: float = 30.0
    # How often each RVQ level is the one a training row learns: None = uniform (the paper); e.g.
    # [4, 2, 1, 1, ...] trains level 0, which carries the content, a third of the time with 8 levels.
    level_weights: Optional[list[float]] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranges(self, at_least_one=("semantic_vocab_size", "codebook_size", "num_quantizers"),
                     positive=("semantic_rate", "acoustic_rate"))
        w = self.level_weights
        if w is not None and (len(w) != self.num_quantizers or min(w) < 0 or sum(w) <= 0):
            raise ValueError(f"level_weights needs {self.num_quantizers} weights (one per level, >= 0, not all 0); "
                             f"got {list(w)}")
