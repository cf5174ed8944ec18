"""AudioLM inference over the trained stages: prompt audio -> semantic -> coarse -> fine -> waveform."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from soundstage.errors import SoundstageError

from .stages import CoarseLMStage, FineLMStage, SemanticLMStage


class AudioLMGenerator:
    """Generates audio with the three LMs, a semantic tokenizer and a codec.

    ``semantic_tokenizer`` needs ``encode(wave [B, T]) -> [B, Ts]`` and ``sample_rate``, ``frame_rate``,
    ``vocab_size``; ``codec`` needs ``encode(wave, num_quantizers) -> [B, Q, Ta]``,
    ``decode(codes) -> [B, T]`` and ``sample_rate``, ``frame_rate``, ``hop_length``, ``codebook_size``.
    Each LM samples with its own ``config.sampling`` unless ``sampling`` overrides it per stage,
    e.g. ``{"semantic": {"temperature": 0.8}, "fine": {"top_k": 1}}``.
    """

    def __init__(
        self,
        semantic_tokenizer: Any,
        semantic_lm: SemanticLMStage,
        coarse_lm: CoarseLMStage,
        fine_lm: FineLMStage,
        codec: Any,
        sampling: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.semantic_tokenizer, self.codec = semantic_tokenizer, codec
        self.semantic_lm, self.coarse_lm, self.fine_lm = semantic_lm, coarse_lm, fine_lm
        self.sampling = {"semantic": {}, "coarse": {}, "fine": {}} | (sampling or {})
        self._check()

    def _check(self) -> None:
        s, c, f = self.semantic_lm.config, self.coarse_lm.config, self.fine_lm.config
        pairs = [
            ("semantic tokenizer vocab_size", self.semantic_tokenizer.vocab_size, "semantic_lm.semantic_vocab_size", s.semantic_vocab_size),
            ("semantic_lm.semantic_vocab_size", s.semantic_vocab_size, "coarse_lm.semantic_vocab_size", c.semantic_vocab_size),
            ("codec codebook_size", self.codec.codebook_size, "coarse_lm.codebook_size", c.codebook_size),
            ("coarse_lm.codebook_size", c.codebook_size, "fine_lm.codebook_size", f.codebook_size),
            ("coarse_lm.num_coarse_quantizers", c.num_coarse_quantizers, "fine_lm.num_coarse_quantizers", f.num_coarse_quantizers),
            ("semantic tokenizer sample_rate", self.semantic_tokenizer.sample_rate, "codec sample_rate", self.codec.sample_rate),
            ("semantic tokenizer frame_rate", self.semantic_tokenizer.frame_rate, "coarse_lm.semantic_rate", c.semantic_rate),
            ("codec frame_rate", self.codec.frame_rate, "coarse_lm.acoustic_rate", c.acoustic_rate),
        ]
        bad = [f"{a}={va} != {b}={vb}" for a, va, b, vb in pairs if abs(float(va) - float(vb)) > 1e-6]
        if bad:
            raise SoundstageError("the generation models do not fit together: " + "; ".join(bad))

    @property
    def sample_rate(self) -> int:
        return int(self.codec.sample_rate)

    @torch.inference_mode()
    def continue_audio(
        self, wave: Tensor, seconds: float, include_prompt: bool = True, generator: torch.Generator | None = None
    ) -> Tensor:
        """Continue prompt audio [T] or [B, T] (at ``sample_rate``) by ``seconds`` -> waveform [B, T']."""
        wave = wave[None] if wave.dim() == 1 else wave
        Q, Qc = self.fine_lm.config.num_quantizers, self.coarse_lm.config.num_coarse_quantizers
        prompt = self.semantic_tokenizer.encode(wave)  # [B, Ts]
        codes = self.codec.encode(wave, num_quantizers=Q)  # [B, Q, Ta]
        n_new = round(seconds * self.semantic_lm.config.semantic_rate)
        new_ids = self.semantic_lm.generate(prompt, n_new, generator=generator, **self.sampling["semantic"])[:, -n_new:]
        # the coarse LM sees the prompt's ids as encoded (the semantic LM may have deduplicated its copy)
        semantic = torch.cat([prompt.to(new_ids.device), new_ids], dim=1) if n_new else prompt
        c = self.coarse_lm.config
        prompt_frames = min(codes.shape[-1], round(prompt.shape[1] * c.acoustic_rate / c.semantic_rate))
        codes = codes[..., :prompt_frames].to(semantic.device)
        coarse = self.coarse_lm.generate(
            semantic, acoustic_prompt=codes[:, :Qc], generator=generator, **self.sampling["coarse"]
        )  # [B, Q', Ta']; the prompt frames come back as given
        new = self.fine_lm.generate(coarse[..., prompt_frames:], generator=generator, **self.sampling["fine"])
        codes = torch.cat([codes, new.to(codes.device)], dim=-1) if include_prompt else new
        return self.codec.decode(codes)

    @torch.inference_mode()
    def generate(self, seconds: float, batch: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """Unconditional audio: ``batch`` waveforms of about ``seconds`` -> [batch, T]."""
        n = round(seconds * self.semantic_lm.config.semantic_rate)
        semantic = self.semantic_lm.generate(None, n, batch_size=batch, generator=generator, **self.sampling["semantic"])
        return self.from_semantic(semantic, generator=generator)

    @torch.inference_mode()
    def from_semantic(self, ids: Tensor, generator: torch.Generator | None = None, prompt: Tensor | None = None) -> Tensor:
        """Acoustic generation from given semantic ids [B, Ts] (or [Ts]) -> waveform [B, T].

        ``prompt``: audio [B, Tp] (at ``sample_rate``) of the ids' first seconds; its codec codes
        start the acoustic tokens, so the output keeps the prompt's voice and recording conditions.
        """
        ids = ids[None] if ids.dim() == 1 else ids
        if prompt is None:
            coarse = self.coarse_lm.generate(ids, generator=generator, **self.sampling["coarse"])
            codes = self.fine_lm.generate(coarse, generator=generator, **self.sampling["fine"])
            return self.codec.decode(codes)
        prompt = prompt[None] if prompt.dim() == 1 else prompt
        Q, Qc = self.fine_lm.config.num_quantizers, self.coarse_lm.config.num_coarse_quantizers
        c = self.coarse_lm.config
        codes = self.codec.encode(prompt, num_quantizers=Q)  # [B, Q, Tp']
        prompt_frames = min(codes.shape[-1], round(ids.shape[1] * c.acoustic_rate / c.semantic_rate))
        codes = codes[..., :prompt_frames].to(ids.device)
        coarse = self.coarse_lm.generate(ids, acoustic_prompt=codes[:, :Qc], generator=generator, **self.sampling["coarse"])
        new = self.fine_lm.generate(coarse[..., prompt_frames:], generator=generator, **self.sampling["fine"])
        return self.codec.decode(torch.cat([codes, new.to(codes.device)], dim=-1))
