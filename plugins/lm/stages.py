"""The AudioLM language-model stages: semantic (stage 1), coarse acoustic (2) and fine acoustic (3).

Each trains on token shards (``consumes = ("tokens",)``) through its token layout and exposes
``generate`` (temperature / top-k / top-p, batched, KV-cached). Sequences longer than the training
window are generated in sliding windows (semantic, coarse) or independent chunks (fine).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from soundstage.config import check_ranges
from soundstage.errors import SoundstageError
from soundstage.registry import register_stage
from soundstage.stage import StageContext
from soundstage.token_contract import TokenExpectation

# contract field -> the LM config key that sets it (named in mismatch messages)
SEMANTIC_KEYS = {"vocab_size": "semantic_vocab_size", "frame_rate": "semantic_rate"}
ACOUSTIC_KEYS = {"vocab_size": "codebook_size", "frame_rate": "acoustic_rate", "levels": "num_quantizers"}

from .layouts import CoarseLayout, FineLayout, SemanticLayout, dedup_consecutive
from .lm_stage import LMConfig, LMStage
from .sampling import decode
from .transformer import TransformerConfig


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
class CoarseLMConfig(LMConfig):
    """Stage 2: semantic ids -> the first ``num_coarse_quantizers`` RVQ levels."""

    model: TransformerConfig = field(default_factory=lambda: TransformerConfig(block_size=2304))
    semantic_vocab_size: int = 1024
    codebook_size: int = 1024
    num_coarse_quantizers: int = 4
    semantic_rate: float = 25.0
    acoustic_rate: float = 50.0  # codec frames per second
    window_seconds: float = 10.0
    # Also condition each acoustic position on the semantic id of the frame it predicts (an embedding
    # summed into its input), beside AudioLM's semantic prefix. Off in the paper. On a CPU budget the
    # prefix alone does not teach the alignment (docs/training_guide.md: teacher-forced level-0 codes
    # decode to PER 0.78 after 32 min, against 0.34 for the true level 0).
    aligned_semantic: bool = False
    # With aligned_semantic: also the semantic ids this many tokens before and after the frame's, each
    # offset with its own embedding (a lookahead on what is said; docs/training_guide.md, session 9).
    aligned_context: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranges(self, at_least_one=("semantic_vocab_size", "codebook_size", "num_coarse_quantizers"),
                     positive=("semantic_rate", "acoustic_rate"), non_negative=("aligned_context",))


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


def _device(stage: LMStage) -> torch.device:
    return stage.model.embed.weight.device


@register_stage("semantic_lm")
class SemanticLMStage(LMStage):
    """Decoder-only LM over semantic ids (AudioLM stage 1)."""

    config_class = SemanticLMConfig
    produces = ("semantic_lm",)
    streams = ("semantic",)
    config: SemanticLMConfig

    def __init__(self, config: SemanticLMConfig) -> None:
        super().__init__(config, SemanticLayout(config.semantic_vocab_size, config.dedup), metric_levels=[])

    def max_seq_len(self) -> int:
        return self.layout.max_len(self.window_tokens(self.config)["semantic"])

    @classmethod
    def expected_streams(cls, config: SemanticLMConfig) -> list[TokenExpectation]:
        return [TokenExpectation("semantic", config.semantic_vocab_size, config.semantic_rate, keys=SEMANTIC_KEYS)]

    @torch.inference_mode()
    def generate(
        self,
        prompt: Tensor | None = None,
        num_tokens: int = 100,
        batch_size: int = 1,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Continue semantic ids prompt [B, Tp] (None: start from scratch, ``batch_size`` rows)
        by ``num_tokens`` -> [B, Tp + num_tokens]."""
        device = _device(self)
        out = torch.empty(batch_size, 0, dtype=torch.long, device=device) if prompt is None else prompt.to(device)
        if self.config.dedup and out.shape[1]:
            rows = [dedup_consecutive(r) for r in out]
            n = min(len(r) for r in rows)  # rows must align; keep each row's most recent ids
            out = torch.stack([r[len(r) - n :] for r in rows])
        sampling = self._sampling(temperature, top_k, top_p)
        block = self.config.model.block_size
        fits = 1 + out.shape[1] + num_tokens <= block
        remaining = num_tokens
        while remaining > 0:
            # Past the block size, slide: keep the latest half block as context and re-prefill.
            keep = out.shape[1] if fits else min(out.shape[1], (block - 1) // 2)
            bos = out.new_full((out.shape[0], 1), self.layout.bos)
            seq = torch.cat([bos, out[:, out.shape[1] - keep :]], dim=1)
            n = min(remaining, block - seq.shape[1])
            new = decode(self.model, seq, [self.layout.token_range] * n, sampling, generator)
            out, remaining = torch.cat([out, new], dim=1), remaining - n
        return out


@register_stage("coarse_lm")
class CoarseLMStage(LMStage):
    """Semantic ids -> coarse RVQ codes, flattened frame by frame (AudioLM stage 2)."""

    config_class = CoarseLMConfig
    produces = ("coarse_lm",)
    streams = ("semantic", "acoustic")
    config: CoarseLMConfig

    def __init__(self, config: CoarseLMConfig) -> None:
        ratio = config.semantic_rate / config.acoustic_rate if config.aligned_semantic else None
        layout = CoarseLayout(config.semantic_vocab_size, config.codebook_size, config.num_coarse_quantizers, ratio,
                              config.aligned_context)
        super().__init__(config, layout, metric_levels=list(range(config.num_coarse_quantizers)))

    def window(self) -> tuple[int, int]:
        """(semantic tokens, acoustic frames) in one window."""
        w = self.window_tokens(self.config)
        return w["semantic"], w["acoustic"]

    def max_seq_len(self) -> int:
        return self.layout.max_len(*self.window())

    @classmethod
    def expected_streams(cls, c: CoarseLMConfig) -> list[TokenExpectation]:
        return [TokenExpectation("semantic", c.semantic_vocab_size, c.semantic_rate, keys=SEMANTIC_KEYS),
                TokenExpectation("acoustic", c.codebook_size, c.acoustic_rate, min_levels=c.num_coarse_quantizers,
                                 keys={**ACOUSTIC_KEYS, "levels": "num_coarse_quantizers"})]

    def preview_codes(self, batch: dict[str, Tensor]) -> Tensor:
        """Coarse codes for the example's first ``preview_seconds`` of semantic ids (coarse levels only)."""
        return self.generate(self.preview_semantic(batch))

    @torch.inference_mode()
    def generate(
        self,
        semantic: Tensor,
        acoustic_prompt: Tensor | None = None,
        num_frames: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        guidance: float | None = None,
    ) -> Tensor:
        """Coarse codes [B, Q', num_frames] for semantic ids [B, Ts].

        ``acoustic_prompt`` [B, >=Q', Tp]: codes of the first Tp frames (kept as given);
        ``num_frames`` defaults to the duration of the semantic ids; ``guidance`` overrides
        ``sampling.guidance`` (higher: closer to the semantic ids, less of the prompt's voice).
        """
        device, Qc = _device(self), self.config.num_coarse_quantizers
        semantic = semantic.to(device)
        B, Ts = semantic.shape
        ratio = self.config.acoustic_rate / self.config.semantic_rate
        total = round(Ts * ratio) if num_frames is None else num_frames
        if acoustic_prompt is None:
            codes = torch.empty(B, Qc, 0, dtype=torch.long, device=device)
        else:
            if acoustic_prompt.shape[1] < Qc:
                raise ValueError(f"acoustic_prompt has {acoustic_prompt.shape[1]} levels, need at least {Qc}")
            codes = acoustic_prompt[:, :Qc, :total].to(device)
        win_s, win_a = self.window()
        ranges = [self.layout.level_range(q) for q in range(Qc)]
        sampling = self._sampling(temperature, top_k, top_p, guidance)
        while codes.shape[-1] < total:
            t = codes.shape[-1]
            # Window start: keep half a window of generated context, aligned to a semantic token.
            a0 = min(max(0, t - win_a // 2), max(0, total - win_a))
            s0 = int(a0 / ratio + 1e-9)
            while round(s0 * ratio) + win_a <= t:  # tiny windows: make sure this one adds frames
                s0 += 1
            a0 = round(s0 * ratio)
            a1 = min(total, a0 + win_a)
            window = semantic[:, s0 : min(Ts, s0 + win_s)]
            seq = self.layout.encode(window, codes[:, :, a0:t])
            cond = self.layout.conditions(window, a1 - a0) if self.layout.num_conditions else None
            none = self.layout.unconditioned(cond) if cond is not None and sampling.guidance != 1.0 else None
            new = decode(self.model, seq, ranges * (a1 - t), sampling, generator, cond, none)  # [B, Q'*(a1-t)]
            codes = torch.cat([codes, self.layout.tokens_to_codes(new)], dim=-1)
        return codes


@register_stage("fine_lm")
class FineLMStage(LMStage):
    """Coarse RVQ levels -> all levels, chunk by chunk (AudioLM stage 3)."""

    config_class = FineLMConfig
    produces = ("fine_lm",)
    streams = ("acoustic",)
    config: FineLMConfig

    def __init__(self, config: FineLMConfig) -> None:
        layout = FineLayout(config.codebook_size, config.num_coarse_quantizers, config.num_quantizers)
        super().__init__(config, layout, metric_levels=list(range(config.num_coarse_quantizers, config.num_quantizers)))

    def chunk_frames(self) -> int:
        return self.window_tokens(self.config)["acoustic"]

    def max_seq_len(self) -> int:
        return self.layout.max_len(self.chunk_frames())

    @classmethod
    def expected_streams(cls, c: FineLMConfig) -> list[TokenExpectation]:
        return [TokenExpectation("acoustic", c.codebook_size, c.acoustic_rate, levels=c.num_quantizers, keys=ACOUSTIC_KEYS)]

    def preview_codes(self, batch: dict[str, Tensor]) -> Tensor:
        """All levels generated from the example's first ``preview_seconds`` of coarse codes."""
        n = max(1, round(self.config.preview_seconds * self.config.acoustic_rate))
        return self.generate(batch["acoustic"][:, :, : min(n, int(batch["acoustic_lengths"][0]))])

    @torch.inference_mode()
    def generate(
        self,
        coarse: Tensor,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """All Q levels [B, Q, T] from coarse codes [B, >=Q', T]; chunks are generated as one batch."""
        Qc, Q = self.config.num_coarse_quantizers, self.config.num_quantizers
        coarse = coarse[:, :Qc].to(_device(self))
        B, _, T = coarse.shape
        chunk = self.chunk_frames()
        n_full = T // chunk
        sampling = self._sampling(temperature, top_k, top_p)
        parts = []
        if n_full:
            full = coarse[..., : n_full * chunk].reshape(B, Qc, n_full, chunk).transpose(1, 2).reshape(-1, Qc, chunk)
            fine = self._fine_chunks(full, sampling, generator)  # [B*n_full, Q, chunk]
            parts.append(fine.reshape(B, n_full, Q, chunk).transpose(1, 2).reshape(B, Q, n_full * chunk))
        if T > n_full * chunk:
            parts.append(self._fine_chunks(coarse[..., n_full * chunk :], sampling, generator))
        return torch.cat(parts, dim=-1) if parts else coarse.new_zeros(B, Q, 0)

    def _fine_chunks(self, coarse: Tensor, sampling, generator) -> Tensor:
        """Coarse [N, Q', c] -> all levels [N, Q, c]."""
        Qc, Q = self.config.num_coarse_quantizers, self.config.num_quantizers
        ranges = [self.layout.level_range(q) for q in range(Qc, Q)] * coarse.shape[-1]
        new = decode(self.model, self.layout.coarse_tokens(coarse), ranges, sampling, generator)
        return torch.cat([coarse, self.layout.fine_codes(new)], dim=1)
