"""AudioLM inference over the trained stages: prompt audio -> semantic -> acoustic codes (coarse -> fine, or
SoundStorm) -> waveform."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from soundstage.errors import SoundstageError

from .stages import CoarseLMStage, FineLMStage, SemanticLMStage


class AudioLMGenerator:
    """Generates audio with a semantic tokenizer, the semantic LM, an acoustic generator and a codec.

    The acoustic generator is either AudioLM's coarse + fine LMs (``coarse_lm``, ``fine_lm``) or a
    ``soundstorm`` stage (pass it by keyword, with no coarse / fine LM); ``acoustic_codes`` hides which.
    ``semantic_tokenizer`` needs ``encode(wave [B, T]) -> [B, Ts]`` and ``sample_rate``, ``frame_rate``,
    ``vocab_size``; ``codec`` needs ``encode(wave, num_quantizers) -> [B, Q, Ta]``,
    ``decode(codes) -> [B, T]`` and ``sample_rate``, ``frame_rate``, ``hop_length``, ``codebook_size``.
    Each model samples with its own ``config.sampling`` unless ``sampling`` overrides it per stage,
    e.g. ``{"semantic": {"temperature": 0.8}, "fine": {"top_k": 1}, "soundstorm": {"top_k": 50}}``.
    """

    def __init__(
        self,
        semantic_tokenizer: Any,
        semantic_lm: SemanticLMStage,
        coarse_lm: CoarseLMStage | None = None,
        fine_lm: FineLMStage | None = None,
        codec: Any = None,
        sampling: dict[str, dict[str, Any]] | None = None,
        soundstorm: Any = None,
    ) -> None:
        if (soundstorm is None) == (coarse_lm is None or fine_lm is None) or (soundstorm is not None and (coarse_lm or fine_lm)):
            raise SoundstageError("give the acoustic generator as coarse_lm + fine_lm or as soundstorm (exactly one of them)")
        if codec is None:
            raise SoundstageError("generation needs a codec")
        self.semantic_tokenizer, self.codec = semantic_tokenizer, codec
        self.semantic_lm, self.coarse_lm, self.fine_lm, self.soundstorm = semantic_lm, coarse_lm, fine_lm, soundstorm
        self.sampling = {"semantic": {}, "coarse": {}, "fine": {}, "soundstorm": {}} | (sampling or {})
        self._check()

    @property
    def acoustic_config(self) -> Any:
        """Config of the stage that maps semantic ids to codes (the coarse LM's or SoundStorm's): its rates."""
        return self.soundstorm.config if self.soundstorm is not None else self.coarse_lm.config

    @property
    def num_quantizers(self) -> int:
        """RVQ levels the acoustic generator makes (and the codec decodes)."""
        return int(self.soundstorm.config.num_quantizers if self.soundstorm is not None else self.fine_lm.config.num_quantizers)

    def _check(self) -> None:
        s, a = self.semantic_lm.config, self.acoustic_config
        name = "soundstorm" if self.soundstorm is not None else "coarse_lm"
        pairs = [
            ("semantic tokenizer vocab_size", self.semantic_tokenizer.vocab_size, "semantic_lm.semantic_vocab_size", s.semantic_vocab_size),
            ("semantic_lm.semantic_vocab_size", s.semantic_vocab_size, f"{name}.semantic_vocab_size", a.semantic_vocab_size),
            ("codec codebook_size", self.codec.codebook_size, f"{name}.codebook_size", a.codebook_size),
            ("semantic tokenizer sample_rate", self.semantic_tokenizer.sample_rate, "codec sample_rate", self.codec.sample_rate),
            ("semantic tokenizer frame_rate", self.semantic_tokenizer.frame_rate, f"{name}.semantic_rate", a.semantic_rate),
            ("codec frame_rate", self.codec.frame_rate, f"{name}.acoustic_rate", a.acoustic_rate),
        ]
        if self.soundstorm is None:
            c, f = self.coarse_lm.config, self.fine_lm.config
            pairs += [
                ("coarse_lm.codebook_size", c.codebook_size, "fine_lm.codebook_size", f.codebook_size),
                ("coarse_lm.num_coarse_quantizers", c.num_coarse_quantizers, "fine_lm.num_coarse_quantizers", f.num_coarse_quantizers),
            ]
        bad = [f"{a}={va} != {b}={vb}" for a, va, b, vb in pairs if abs(float(va) - float(vb)) > 1e-6]
        levels = getattr(self.codec, "num_quantizers", None)
        if levels is not None and int(levels) < self.num_quantizers:
            key = "soundstorm.num_quantizers" if self.soundstorm is not None else "fine_lm.num_quantizers"
            bad.append(f"codec num_quantizers={levels} < {key}={self.num_quantizers}")
        if bad:
            raise SoundstageError("the generation models do not fit together: " + "; ".join(bad))

    @property
    def sample_rate(self) -> int:
        return int(self.codec.sample_rate)

    @torch.inference_mode()
    def acoustic_codes(self, semantic: Tensor, prompt: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Codes of every level [B, Q, Ta] for semantic ids [B, Ts]; ``prompt`` codes [B, Q, Tp] of the first
        frames start them and come back as given."""
        if self.soundstorm is not None:
            return self.soundstorm.generate(semantic, acoustic_prompt=prompt, generator=generator, **self.sampling["soundstorm"])
        Qc = self.coarse_lm.config.num_coarse_quantizers
        coarse = self.coarse_lm.generate(semantic, acoustic_prompt=None if prompt is None else prompt[:, :Qc],
                                         generator=generator, **self.sampling["coarse"])  # [B, Q', Ta]
        if prompt is None:
            return self.fine_lm.generate(coarse, generator=generator, **self.sampling["fine"])
        new = self.fine_lm.generate(coarse[..., prompt.shape[-1] :], generator=generator, **self.sampling["fine"])
        return torch.cat([prompt, new.to(prompt.device)], dim=-1)

    def _prompt_codes(self, wave: Tensor, num_semantic: int, device: torch.device) -> Tensor:
        """Codec codes [B, Q, Tp] of prompt audio, cut to the frames of its first ``num_semantic`` semantic ids."""
        a = self.acoustic_config
        codes = self.codec.encode(wave, num_quantizers=self.num_quantizers)  # [B, Q, Tp']
        frames = min(codes.shape[-1], round(num_semantic * a.acoustic_rate / a.semantic_rate))
        return codes[..., :frames].to(device)

    @torch.inference_mode()
    def continue_audio(
        self, wave: Tensor, seconds: float, include_prompt: bool = True, generator: torch.Generator | None = None
    ) -> Tensor:
        """Continue prompt audio [T] or [B, T] (at ``sample_rate``) by ``seconds`` -> waveform [B, T']."""
        wave = wave[None] if wave.dim() == 1 else wave
        prompt = self.semantic_tokenizer.encode(wave)  # [B, Ts]
        n_new = round(seconds * self.semantic_lm.config.semantic_rate)
        new_ids = self.semantic_lm.generate(prompt, n_new, generator=generator, **self.sampling["semantic"])[:, -n_new:]
        # the acoustic stage sees the prompt's ids as encoded (the semantic LM may have deduplicated its copy)
        semantic = torch.cat([prompt.to(new_ids.device), new_ids], dim=1) if n_new else prompt
        codes = self._prompt_codes(wave, prompt.shape[1], semantic.device)
        out = self.acoustic_codes(semantic, codes, generator)  # [B, Q, Ta']; the prompt frames come back as given
        return self.codec.decode(out if include_prompt else out[..., codes.shape[-1] :])

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
            return self.codec.decode(self.acoustic_codes(ids, None, generator))
        prompt = prompt[None] if prompt.dim() == 1 else prompt
        return self.codec.decode(self.acoustic_codes(ids, self._prompt_codes(prompt, ids.shape[1], ids.device), generator))
