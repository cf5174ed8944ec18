"""The AudioLM language-model stages: semantic (stage 1), coarse acoustic (2) and fine acoustic (3).

Each trains on token shards (``consumes = ("tokens",)``) through its token layout and exposes
``generate`` (temperature / top-k / top-p, batched, KV-cached). Sequences longer than the training
window are generated in sliding windows (semantic, coarse) or independent chunks (fine).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor


from soundstage.data.token_batch import TokenBatch

from .layouts import CoarseLayout, FineLayout, SemanticLayout, dedup_consecutive
from .configs import ACOUSTIC_KEYS, SEMANTIC_KEYS, CoarseLMConfig, CoarseSamplingConfig, FineLMConfig, SemanticLMConfig  # noqa: F401  (re-exported)
from .lm_stage import LMStage
from .sampling import decode
from .spec import CoarseLMSpec, FineLMSpec, SemanticLMSpec

# (candidate codes [N, Q', t1], their semantic ids [N, Ts], first new frame t0) -> cost [N], lower is better
CandidateScorer = Callable[[Tensor, Tensor, int], Tensor]


def _device(stage: LMStage) -> torch.device:
    return stage.model.embed.weight.device


class SemanticLMStage(SemanticLMSpec, LMStage):
    """Decoder-only LM over semantic ids (AudioLM stage 1)."""

    config: SemanticLMConfig

    def __init__(self, config: SemanticLMConfig) -> None:
        super().__init__(config, SemanticLayout(config.semantic_vocab_size, config.dedup), metric_levels=[])

    def max_seq_len(self) -> int:
        return self.layout.max_len(self.window_tokens(self.config)["semantic"])

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


class CoarseLMStage(CoarseLMSpec, LMStage):
    """Semantic ids -> coarse RVQ codes, flattened frame by frame (AudioLM stage 2)."""

    config: CoarseLMConfig

    def __init__(self, config: CoarseLMConfig) -> None:
        ratio = config.semantic_rate / config.acoustic_rate if config.aligned_semantic else None
        layout = CoarseLayout(config.semantic_vocab_size, config.codebook_size, config.num_coarse_quantizers, ratio,
                              config.aligned_context, prefix=config.semantic_prefix)
        super().__init__(config, layout, metric_levels=list(range(config.num_coarse_quantizers)))

    def window(self) -> tuple[int, int]:
        """(semantic tokens, acoustic frames) in one window."""
        w = self.window_tokens(self.config)
        return w["semantic"], w["acoustic"]

    def max_seq_len(self) -> int:
        return self.layout.max_len(*self.window())

    def preview_codes(self, batch: TokenBatch) -> Tensor:
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
        candidates: int | None = None,
        scorer: CandidateScorer | None = None,
        level_guidance: Sequence[float] | None = None,
        level_temperature: Sequence[float] | None = None,
    ) -> Tensor:
        """Coarse codes [B, Q', num_frames] for semantic ids [B, Ts].

        ``acoustic_prompt`` [B, >=Q', Tp]: codes of the first Tp frames (kept as given);
        ``num_frames`` defaults to the duration of the semantic ids; ``guidance`` overrides
        ``sampling.guidance`` (higher: closer to the semantic ids, less of the prompt's voice), and
        ``level_guidance`` / ``level_temperature`` give one value per coarse level instead (an explicit
        scalar ``guidance`` / ``temperature`` alone replaces the config's per-level lists too).
        With a ``scorer`` and ``candidates`` > 1 (default ``sampling.candidates``), every
        ``sampling.candidate_seconds`` of frames is drawn ``candidates`` times and the candidate the
        scorer rates lowest is kept (``CandidateScorer``).
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
        sampling = self._coarse_sampling(temperature, top_k, top_p, guidance, level_guidance, level_temperature)
        n = sampling.candidates if candidates is None else candidates
        if scorer is None or n <= 1:
            return self._extend(semantic, codes, total, sampling, generator)
        chunk = max(1, round(sampling.candidate_seconds * self.config.acoustic_rate))
        many = semantic.repeat_interleave(n, dim=0)
        while codes.shape[-1] < total:
            t0 = codes.shape[-1]
            drawn = self._extend(many, codes.repeat_interleave(n, dim=0), min(total, t0 + chunk), sampling, generator)
            cost = scorer(drawn, many, t0).view(B, n)  # [B, n]
            codes = drawn.view(B, n, Qc, -1)[torch.arange(B, device=device), cost.argmin(dim=1).to(device)]
        return codes

    def _coarse_sampling(self, temperature: float | None, top_k: int | None, top_p: float | None,
                         guidance: float | None, level_guidance: Sequence[float] | None,
                         level_temperature: Sequence[float] | None) -> CoarseSamplingConfig:
        """The stage's sampling with per-call overrides; a scalar given without its per-level list clears the list."""
        sampling = self._sampling(temperature, top_k, top_p, guidance)
        levels = {"level_guidance": (guidance, level_guidance), "level_temperature": (temperature, level_temperature)}
        changes = {key: [float(v) for v in per_level] if per_level is not None else []
                   for key, (scalar, per_level) in levels.items() if per_level is not None or scalar is not None}
        return replace(sampling, **changes) if changes else sampling  # its users check the lengths (per_level)

    def _windows(self, t: int, total: int) -> Iterator[tuple[int, int, int]]:
        """(s0, a0, a1) of each window that makes frames t..total: semantic ids from s0, frames a0..a1, of
        which those from the previous window's a1 (first: t) are new. Each keeps half a window of
        earlier frames as context and starts on a semantic id."""
        ratio = self.config.acoustic_rate / self.config.semantic_rate
        _, win_a = self.window()
        while t < total:
            a0 = min(max(0, t - win_a // 2), max(0, total - win_a))
            s0 = int(a0 / ratio + 1e-9)
            while round(s0 * ratio) + win_a <= t:  # tiny windows: make sure this one adds frames
                s0 += 1
            a0 = round(s0 * ratio)
            yield s0, a0, min(total, a0 + win_a)
            t = min(total, a0 + win_a)

    def _extend(self, semantic: Tensor, codes: Tensor, total: int, sampling: CoarseSamplingConfig,
                generator: torch.Generator | None) -> Tensor:
        """Codes [B, Q', t] -> [B, Q', total], sampled window by window."""
        win_s, _ = self.window()
        Qc = self.config.num_coarse_quantizers
        ranges = [self.layout.level_range(q) for q in range(Qc)]
        levels = sampling.per_level(Qc)  # decode uses them in turn: positions cycle through the levels
        guided = any(s.guidance != 1.0 for s in levels)
        for s0, a0, a1 in self._windows(codes.shape[-1], total):
            t = codes.shape[-1]
            window = semantic[:, s0 : s0 + win_s]
            seq = self.layout.encode(window, codes[:, :, a0:t])
            cond = self.layout.conditions(window, a1 - a0) if self.layout.num_conditions else None
            none = self.layout.unconditioned(cond) if cond is not None and guided else None
            new = decode(self.model, seq, ranges * (a1 - t), levels, generator, cond, none)  # [B, Q'*(a1-t)]
            codes = torch.cat([codes, self.layout.tokens_to_codes(new)], dim=-1)
        return codes

    @torch.inference_mode()
    def teacher_forced(self, semantic: Tensor, codes: Tensor, guidance: float | None = None,
                       level_guidance: Sequence[float] | None = None) -> Tensor:
        """The most likely code of every coarse position given the true codes before it: [B, Q', Ta].

        ``codes`` [B, >=Q', Ta]: the true codes of semantic ids [B, Ts]. The windows, conditions and
        guidance are those ``generate`` uses; only the history differs (the truth instead of the
        model's own samples). Compared with the truth this is the stage's accuracy; the gap between
        these codes and generated ones is what feeding back its own samples (drift) costs.
        """
        device, Qc = _device(self), self.config.num_coarse_quantizers
        semantic, codes = semantic.to(device), codes[:, :Qc].to(device)
        g = [s.guidance for s in self._coarse_sampling(None, None, None, guidance, level_guidance, None).per_level(Qc)]
        win_s, _ = self.window()
        ranges = [self.layout.level_range(q) for q in range(Qc)]
        was_training = self.model.training
        self.model.eval()
        out, t = [], 0  # t: frames predicted so far; each window's new ones are t..a1
        try:
            for s0, a0, a1 in self._windows(0, codes.shape[-1]):
                window = semantic[:, s0 : s0 + win_s]
                seq = self.layout.encode(window, codes[:, :, a0:a1])
                cond = self.layout.conditions(window, a1 - a0) if self.layout.num_conditions else None
                logits = self.model(seq, conditions=cond).float()
                none = None
                if cond is not None and any(gq != 1.0 for gq in g):
                    none = self.model(seq, conditions=self.layout.unconditioned(cond)).float()
                # position p predicts token p + 1; acoustic token j sits at prefix + 1 + j
                first = self.layout.prefix_len(window.shape[-1]) + (t - a0) * Qc
                span = slice(first, first + (a1 - t) * Qc)
                frames = logits[:, span].unflatten(1, (a1 - t, Qc))  # [B, a1-t, Q', V]
                uncond = None if none is None else none[:, span].unflatten(1, (a1 - t, Qc))
                best = []
                for q, (lo, hi) in enumerate(ranges):
                    scores = frames[:, :, q, lo:hi]
                    if uncond is not None and g[q] != 1.0:
                        u = uncond[:, :, q, lo:hi]
                        scores = u + g[q] * (scores - u)
                    best.append(scores.argmax(-1))
                out.append(torch.stack(best, dim=1))
                t = a1
        finally:
            self.model.train(was_training)
        return torch.cat(out, dim=-1)


class FineLMStage(FineLMSpec, LMStage):
    """Coarse RVQ levels -> all levels, chunk by chunk (AudioLM stage 3)."""

    config: FineLMConfig

    def __init__(self, config: FineLMConfig) -> None:
        layout = FineLayout(config.codebook_size, config.num_coarse_quantizers, config.num_quantizers)
        super().__init__(config, layout, metric_levels=list(range(config.num_coarse_quantizers, config.num_quantizers)))

    def chunk_frames(self) -> int:
        return self.window_tokens(self.config)["acoustic"]

    def max_seq_len(self) -> int:
        return self.layout.max_len(self.chunk_frames())

    def preview_codes(self, batch: TokenBatch) -> Tensor:
        """All levels generated from the example's first ``preview_seconds`` of coarse codes."""
        n = max(1, round(self.config.preview_seconds * self.config.acoustic_rate))
        return self.generate(batch.row(0)["acoustic"][None, :, :n])

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
