"""The LM stages' configs (torch-free: ``recipe validate`` and ``soundstage plugins`` read them)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from soundstage.config import RangeError, check_ranges
from soundstage.stage_spec import StageConfig

# contract field -> the LM config key that sets it (named in mismatch messages)
SEMANTIC_KEYS = {"vocab_size": "semantic_vocab_size", "frame_rate": "semantic_rate"}
ACOUSTIC_KEYS = {"vocab_size": "codebook_size", "frame_rate": "acoustic_rate", "levels": "num_quantizers"}


@dataclass
class TransformerConfig:
    """Architecture of the transformer (the vocabulary size comes from the stage's token layout)."""

    d_model: int = 512
    n_layer: int = 6
    n_head: int = 8
    ff_mult: float = 4.0  # hidden width of the MLP = ff_mult * d_model
    block_size: int = 1024  # longest sequence the model attends over (training window and KV cache)
    norm: str = "layernorm"  # layernorm | rmsnorm (LayerNorm has fused CPU kernels for forward and backward)
    position: str = "rope"  # rope | relative_bias (T5-style buckets, shared by all layers)
    rope_base: float = 10000.0
    rel_num_buckets: int = 32
    rel_max_distance: int = 128
    dropout: float = 0.0  # on embeddings and residual branches
    # On the attention probabilities. Any value > 0 makes PyTorch's CPU attention take its unfused path:
    # 1.45x the training-step time at d 256, 4 layers, 700 tokens (benchmarks/attention_dropout.py).
    attention_dropout: float = 0.0
    bias: bool = False  # biases in linear layers and LayerNorm
    tie_weights: bool = True  # output projection shares the token embedding
    activation_checkpointing: bool = False  # recompute blocks in backward to save memory
    compile: bool = False  # torch.compile the model in place when the stage is built (for training)

    def __post_init__(self) -> None:
        check_ranges(self, at_least_one=("d_model", "n_layer", "n_head", "block_size", "rel_num_buckets",
                                         "rel_max_distance"),
                     positive=("ff_mult", "rope_base"), fraction=("dropout",))


@dataclass
class SamplingConfig:
    """How a stage samples during generation; temperature 0 means greedy (argmax)."""

    temperature: float = 1.0
    top_k: int = 0  # keep the k most likely tokens; 0 = off
    top_p: float = 1.0  # keep the smallest set whose probability reaches top_p; 1.0 = off
    # Classifier-free guidance on a model's condition ids: logits = uncond + guidance * (cond - uncond),
    # uncond being the same model with every condition "none" (train it with ``condition_dropout``).
    # 1.0 = off (one forward pass); > 1 follows the conditions more closely, at two passes a token.
    guidance: float = 1.0
    # Decode with a static KV cache and a torch.compile'd one-token step (CUDA graphs on a GPU): for
    # long or repeated generations; the first call per batch size compiles (seconds to a minute).
    compile: bool = False

    def __post_init__(self) -> None:
        check_ranges(self, non_negative=("temperature", "top_k", "guidance"), fraction=("top_p",))


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay to ``min_lr_ratio * lr`` at the trainer's max_steps."""

    lr: float = 3e-4
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1

    def __post_init__(self) -> None:
        check_ranges(self, positive=("lr",), non_negative=("weight_decay", "warmup_steps"),
                     fraction=("beta1", "beta2", "min_lr_ratio"))


@dataclass
class LMConfig(StageConfig):
    """Fields every LM stage has; each stage adds its token sizes and rates."""

    model: TransformerConfig = field(default_factory=TransformerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # defaults for generate()
    batch_size: int = 8
    window_seconds: float = 10.0  # training window (cropped aligned across streams)
    batches_per_epoch: Optional[int] = None
    # Acoustic stages log this many seconds of generated audio to TensorBoard at each validation
    # when a codec is among the stage's needs (0 = off).
    preview_seconds: float = 2.0
    # Share of the RVQ-code inputs replaced by random codes of their level in training (targets kept):
    # the model learns not to copy its own history, which generation feeds it errors included
    # (input_noise.py). 0 = off, as in the paper.
    input_noise: float = 0.0
    # Share of training sequences whose condition ids (layouts with conditions: the coarse LM's
    # aligned semantic ids) are all "none": it also learns the unconditioned model that
    # classifier-free guidance (``sampling.guidance``) contrasts with. 0 = off.
    condition_dropout: float = 0.0

    def __post_init__(self) -> None:
        check_ranges(self, at_least_one=("batch_size", "batches_per_epoch"), positive=("window_seconds",),
                     non_negative=("preview_seconds",), fraction=("input_noise", "condition_dropout"))


@dataclass
class SemanticLMConfig(LMConfig):
    """Stage 1: next-token prediction on semantic ids."""

    semantic_vocab_size: int = 1024
    semantic_rate: float = 25.0  # semantic tokens per second
    dedup: bool = False  # drop consecutive duplicate ids (generated "seconds" then become approximate)
    window_seconds: float = 30.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranges(self, at_least_one=("semantic_vocab_size",), positive=("semantic_rate",))


@dataclass
class CoarseSamplingConfig(SamplingConfig):
    """The coarse LM's sampling, plus best-of-N: ``candidates`` continuations of every ``candidate_seconds``
    are drawn and the one whose audio re-tokenizes closest to the semantic ids it was asked for is kept.
    The measure needs the codec and the semantic tokenizer, so the AudioLM pipeline applies it
    (``generate`` without a ``scorer`` ignores it). Costs about ``candidates`` x the decoding work."""

    candidates: int = 1  # 1 = off
    candidate_seconds: float = 0.5
    # One value per coarse RVQ level, in place of ``guidance`` / ``temperature`` for that level (empty:
    # the scalar for every level), e.g. guidance [2, 1, 1] guides only level 0, which carries most of the
    # phones. On speech_small no setting of levels 1-2 moved the voice (docs/training_history.md, session 20).
    level_guidance: list[float] = field(default_factory=list)
    level_temperature: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranges(self, at_least_one=("candidates",), positive=("candidate_seconds",),
                     non_negative=("level_guidance", "level_temperature"))

    def per_level(self, num_levels: int) -> list[SamplingConfig]:
        """The plain sampling of each of ``num_levels`` RVQ levels (its guidance and temperature)."""
        for key in ("level_guidance", "level_temperature"):
            n = len(getattr(self, key))
            if n not in (0, num_levels):
                raise RangeError(key, f"has {n} values; give one per coarse level ({num_levels}) or none", type(self))
        return [SamplingConfig(
            temperature=self.level_temperature[q] if self.level_temperature else self.temperature,
            top_k=self.top_k, top_p=self.top_p, compile=self.compile,
            guidance=self.level_guidance[q] if self.level_guidance else self.guidance,
        ) for q in range(num_levels)]


@dataclass
class CoarseLMConfig(LMConfig):
    """Stage 2: semantic ids -> the first ``num_coarse_quantizers`` RVQ levels."""

    model: TransformerConfig = field(default_factory=lambda: TransformerConfig(block_size=2304))
    semantic_vocab_size: int = 1024
    codebook_size: int = 1024
    num_coarse_quantizers: int = 4
    semantic_rate: float = 25.0
    acoustic_rate: float = 50.0  # codec frames per second
    window_seconds: float = 10.0
    sampling: CoarseSamplingConfig = field(default_factory=CoarseSamplingConfig)  # defaults for generate()
    # Also condition each acoustic position on the semantic id of the frame it predicts (an embedding
    # summed into its input), beside AudioLM's semantic prefix. Off in the paper. On a CPU budget the
    # prefix alone does not teach the alignment (docs/training_history.md, session 8: teacher-forced level-0 codes
    # decode to PER 0.78 after 32 min, against 0.34 for the true level 0).
    aligned_semantic: bool = False
    # With aligned_semantic: also the semantic ids this many tokens before and after the frame's, each
    # offset with its own embedding (a lookahead on what is said; docs/training_history.md, session 9).
    aligned_context: int = 0
    # AudioLM's prefix of the window's semantic ids before the codes. With aligned_semantic the same ids
    # also reach every acoustic position, so it can be left out: 1 + 3 x 200 tokens instead of 801 per
    # 4 s window (25% less work a step, none of it on positions that carry a loss).
    semantic_prefix: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.semantic_prefix and not self.aligned_semantic:
            raise RangeError("semantic_prefix", "can be false only with aligned_semantic: true (else nothing "
                             "conditions the codes on the semantic ids)", type(self))
        if type(self.sampling) is SamplingConfig:  # given as the plain sampling config: no best-of-N
            self.sampling = CoarseSamplingConfig(**vars(self.sampling))
        check_ranges(self, at_least_one=("semantic_vocab_size", "codebook_size", "num_coarse_quantizers"),
                     positive=("semantic_rate", "acoustic_rate"), non_negative=("aligned_context",))
        try:
            self.sampling.per_level(self.num_coarse_quantizers)
        except RangeError as exc:
            raise RangeError("sampling." + exc.key, exc.reason, type(self)) from None


@dataclass
class FineLMConfig(LMConfig):
    """Stage 3: coarse RVQ levels -> the remaining levels, in chunks of ``window_seconds``."""

    model: TransformerConfig = field(default_factory=lambda: TransformerConfig(block_size=2048))
    codebook_size: int = 1024
    num_coarse_quantizers: int = 4
    num_quantizers: int = 12
    acoustic_rate: float = 50.0
    window_seconds: float = 3.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranges(self, at_least_one=("codebook_size", "num_coarse_quantizers", "num_quantizers"),
                     positive=("acoustic_rate",))
