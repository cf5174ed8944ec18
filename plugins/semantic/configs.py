"""The semantic stages' configs (torch-free: ``recipe validate`` and ``soundstage plugins`` read them)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from soundstage.config import check_ranges
from soundstage.stage_spec import StageConfig

FEATURE_KINDS = ("mfcc", "logmel", "hubert", "ssl")
UTTERANCE_NORMS = ("none", "mean", "meanvar")


@dataclass
class SemanticDataConfig(StageConfig):
    """Loader settings shared by the semantic stages' configs."""

    batch_size: int = 8
    segment_seconds: float = 4.0
    batches_per_epoch: Optional[int] = 100
    val_batch_size: int = 4
    val_max_seconds: Optional[float] = 20.0
    val_max_items: Optional[int] = 64

    def __post_init__(self) -> None:
        check_ranges(self, at_least_one=("batch_size", "batches_per_epoch", "val_batch_size", "val_max_items"),
                     positive=("segment_seconds", "val_max_seconds"))


def audio_batch_floor(config: SemanticDataConfig, sample_rate: int) -> list[tuple[str, float, str]]:
    """The memory floor of one training batch: its float32 waveforms (for ``Stage.memory_floor``)."""
    what = f"{config.batch_size} x {config.segment_seconds} s of float32 audio at {sample_rate} Hz"
    return [("batch_size", 4.0 * config.batch_size * config.segment_seconds * sample_rate, what)]


@dataclass
class HubertConfig:
    """Architecture of the HuBERT model (HuBERT Base by default)."""

    sample_rate: int = 16000
    frontend: str = "conv"  # conv: HuBERT's raw-wave conv stack | mel: log-mel frames at hop prod(conv_strides) + one conv
    n_mels: int = 80  # mel front end only
    conv_dim: int = 512
    conv_kernels: list[int] = field(default_factory=lambda: [10, 3, 3, 3, 3, 2, 2])
    conv_strides: list[int] = field(default_factory=lambda: [5, 2, 2, 2, 2, 2, 2])
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    num_targets: int = 0  # k-means vocabulary predicted by the head; 0: no head (feature model only)

    def __post_init__(self) -> None:
        check_ranges(self, at_least_one=("n_mels", "conv_dim", "conv_kernels", "conv_strides", "dim", "depth", "heads",
                                         "pos_conv_kernel", "pos_conv_groups"),
                     positive=("sample_rate", "mlp_ratio"), non_negative=("num_targets",), fraction=("dropout",))


@dataclass
class KMeansTokenizerConfig(SemanticDataConfig):
    """Semantic tokenizer: which features, how many clusters, what rate, how to stream the fit."""

    sample_rate: int = 16000
    frame_rate: float = 25.0  # tokens per second (paper: 25); sample_rate / frame_rate must be an integer
    vocab_size: int = 1024  # k-means clusters (paper: 1024)
    features: str = "mfcc"  # mfcc | logmel | hubert (upstream stage producing ssl_features) | ssl (local checkpoint)
    n_mels: int = 40
    n_mfcc: int = 13
    win_ms: float = 25.0
    deltas: bool = True
    layer: int = 6  # feature layer of hubert / ssl models
    ssl_path: Optional[str] = None  # local transformers checkpoint directory (features=ssl); never downloaded
    ssl_spec: str = ""  # set from ssl_path: the kept SSL architecture (JSON), so the export is self-contained
    hubert: Optional[HubertConfig] = None  # set by prepare() from the upstream hubert stage; leave unset in recipes
    normalize: bool = True  # standardise features with statistics of the seeding frames
    utterance_norm: str = "none"  # none | mean | meanvar: per-utterance (CMN / CMVN) normalisation first
    init_batches: int = 8  # batches gathered for k-means++ seeding (needs >= vocab_size frames)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranges(self, at_least_one=("vocab_size", "n_mels", "n_mfcc", "init_batches"),
                     positive=("sample_rate", "frame_rate", "win_ms"), non_negative=("layer",))


@dataclass
class HubertStageConfig(SemanticDataConfig):
    """HuBERT architecture + masked-prediction training settings."""

    model: HubertConfig = field(default_factory=HubertConfig)
    mask_start_prob: float = 0.08  # paper: p = 8% of frames start a span ...
    mask_span: int = 10  # ... of l = 10 frames
    lr: float = 5e-4
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    warmup_steps: int = 1000

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranges(self, at_least_one=("mask_span",), positive=("lr",), non_negative=("weight_decay", "warmup_steps"),
                     fraction=("mask_start_prob", "betas"))
