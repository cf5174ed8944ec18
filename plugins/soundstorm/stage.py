"""``soundstorm``: semantic ids -> every RVQ level in a few dozen parallel passes (replaces coarse + fine).

Trains on token shards like the LM stages (same optimizer, data, token checks, metrics and audio
previews: it is an ``LMStage`` with its own network and loss) and exposes ``generate`` with the
interface of ``coarse_lm.generate``, returning all levels.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor, nn

from soundstage.errors import SoundstageError
from soundstage.data.token_batch import TokenBatch
from soundstage.plugins.lm.layouts import LMBatch
from soundstage.plugins.lm.lm_stage import LMStage

from .configs import DecodingConfig, SoundStormConfig
from .decoding import decode
from .masking import make_masked_batch, semantic_to_frames
from .model import SoundStormModel
from .spec import SoundStormSpec


class SoundStormStage(SoundStormSpec, LMStage):
    """Bidirectional Conformer over codec frames, conditioned on semantic ids, decoded MaskGIT-style."""

    config: SoundStormConfig

    def __init__(self, config: SoundStormConfig) -> None:
        super().__init__(config, layout=None, metric_levels=list(range(config.num_quantizers)))
        self._mask_rng: torch.Generator | None = None  # set per validation batch: the same masks every epoch

    def window_frames(self) -> int:
        """Codec frames in one window."""
        return self.window_tokens(self.config)["acoustic"]

    def build_model(self) -> nn.Module:
        c = self.config
        return SoundStormModel(c.model, c.num_quantizers, c.codebook_size, c.semantic_vocab_size, self.window_frames())

    # --- training -----------------------------------------------------------------------------
    def forward(self, codes: Tensor, semantic: Tensor, frames: Tensor | None = None) -> Tensor:
        """Hidden states [B, T, C] for codes [B, Q, T] (MASK = codebook_size) and frame-rate semantic ids [B, T]."""
        return self.model(codes, semantic, frames)

    def _check_batch(self, batch: TokenBatch) -> None:
        c = self.config
        levels = batch.tokens["acoustic"].shape[1]
        if levels < c.num_quantizers:
            raise SoundstageError(f"{self.stage_name}: num_quantizers={c.num_quantizers} but the tokens have {levels} RVQ levels")
        self._check_ids(batch.tokens["semantic"], c.semantic_vocab_size, "semantic_vocab_size", "semantic ids")
        self._check_ids(batch.tokens["acoustic"][:, : c.num_quantizers], c.codebook_size, "codebook_size", "acoustic codes")

    def _check_ids(self, ids: Tensor, size: int, key: str, what: str) -> None:
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= size):
            raise SoundstageError(f"{self.stage_name}: {what} range over {int(ids.min())}..{int(ids.max())}, "
                                  f"outside {key}={size}")

    def _loss(self, batch: TokenBatch) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor], LMBatch]:
        """Mean cross-entropy over the masked tokens of each row's level, plus the per-token
        (cross-entropy, correct, level) the metrics take (the contract of ``LMStage._loss``)."""
        c = self.config
        self._check_batch(batch)
        rng = None if self.training else self._mask_rng
        mb = make_masked_batch(batch, c.num_quantizers, self.model.mask_id, c.semantic_rate, c.acoustic_rate, rng,
                               None if c.level_weights is None else list(c.level_weights))
        logits = self.model.logits(self.model(mb.inputs, mb.semantic, mb.frames), mb.levels)  # [B, T, K]
        levels = mb.levels[:, None].expand_as(mb.targets)
        picked, targets = logits[mb.loss_mask].float(), mb.targets[mb.loss_mask]  # the masked tokens of each row's level
        ce = F.cross_entropy(picked, targets, reduction="none")
        correct = (picked.detach().argmax(-1) == targets).float()
        return ce.mean(), (ce, correct, levels[mb.loss_mask]), LMBatch(mb.inputs, mb.targets, mb.loss_mask, levels)

    def validation_step(self, batch: TokenBatch, batch_idx: int) -> None:
        # Seeded masks: validation losses compare across epochs and runs.
        self._mask_rng = torch.Generator().manual_seed(batch_idx)
        super().validation_step(batch, batch_idx)

    def preview_codes(self, batch: TokenBatch) -> Tensor:
        """All levels generated from the example's first ``preview_seconds`` of semantic ids."""
        return self.generate(self.preview_semantic(batch))

    # --- generation ---------------------------------------------------------------------------
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
        iterations: list[int] | None = None,
    ) -> Tensor:
        """Codes of every level [B, Q, num_frames] for semantic ids [B, Ts].

        ``acoustic_prompt`` [B, >=Q, Tp]: codes of the first Tp frames (kept as given; Tp must be shorter
        than the window); ``num_frames`` defaults to the duration of the semantic ids; ``iterations``
        overrides ``decoding.iterations``.
        """
        c = self.config
        device = self.model.heads.device
        semantic = semantic.to(device)
        B, Ts = semantic.shape
        if Ts == 0:
            raise SoundstageError(f"{self.stage_name}: no semantic ids to generate from")
        self._check_ids(semantic, c.semantic_vocab_size, "semantic_vocab_size", "semantic ids")
        total = round(Ts * c.acoustic_rate / c.semantic_rate) if num_frames is None else num_frames
        Q, window = c.num_quantizers, self.window_frames()
        if acoustic_prompt is None:
            prompt = torch.empty(B, Q, 0, dtype=torch.long, device=device)
        else:
            if acoustic_prompt.shape[1] < Q:
                raise SoundstageError(f"{self.stage_name}: the acoustic prompt has {acoustic_prompt.shape[1]} RVQ levels, "
                                      f"num_quantizers={Q} (a codec with a different number of levels?)")
            prompt = acoustic_prompt[:, :Q, :total].to(device)
            self._check_ids(prompt, c.codebook_size, "codebook_size", "acoustic prompt codes")
            if prompt.shape[-1] >= window and total > prompt.shape[-1]:
                raise SoundstageError(
                    f"{self.stage_name}: the acoustic prompt is {prompt.shape[-1] / c.acoustic_rate:g} s, not shorter than "
                    f"window_seconds={c.window_seconds:g}; give a shorter prompt or train with a longer window")
        frames = semantic_to_frames(semantic, total, c.semantic_rate, c.acoustic_rate)  # [B, total]
        context = round((c.decoding.context_seconds or c.window_seconds / 2) * c.acoustic_rate)
        passes = (c.decoding if iterations is None else DecodingConfig(iterations=list(iterations))).per_level(Q)
        return decode(self.model, frames, prompt, passes, self._sampling(temperature, top_k, top_p), context,
                      c.decoding.choice_temperature, generator)
