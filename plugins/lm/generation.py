"""AudioLM inference over the trained stages: prompt audio -> semantic -> acoustic codes (coarse -> fine, or
SoundStorm) -> waveform."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from soundstage.errors import SoundstageError
from soundstage.token_contract import TokenStream, streams_problems

from .semantic_scorer import SemanticScorer
from .stages import CoarseLMStage, FineLMStage, SemanticLMStage


class AudioLMGenerator:
    """Generates audio with a semantic tokenizer, the semantic LM, an acoustic generator and a codec.

    The acoustic generator is either AudioLM's coarse + fine LMs (``coarse_lm``, ``fine_lm``) or a
    ``soundstorm`` stage (pass it by keyword, with no coarse / fine LM); ``acoustic_codes`` hides which.
    ``semantic_tokenizer`` needs ``encode(wave [B, T]) -> [B, Ts]`` and ``sample_rate``, ``frame_rate``,
    ``vocab_size``; ``codec`` needs ``encode(wave, num_quantizers) -> [B, Q, Ta]``,
    ``decode(codes) -> [B, T]`` and ``sample_rate``, ``frame_rate``, ``hop_length``, ``codebook_size``.
    Each model samples with its own ``config.sampling`` unless ``sampling`` overrides it per stage,
    e.g. ``{"semantic": {"temperature": 0.8}, "fine": {"top_k": 1}, "soundstorm": {"top_k": 50}}``;
    ``{"coarse": {"candidates": 4}}`` keeps the best of 4 coarse continuations of every
    ``candidate_seconds`` by how well their audio re-tokenizes to the semantic ids (``SemanticScorer``);
    ``{"codec": {"levels": 3}}`` decodes the generated codes' first 3 RVQ levels only (leaves out the
    levels of a fine LM that generates them at chance; docs/evaluation.md).
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
        self.sampling = {"semantic": {}, "coarse": {}, "fine": {}, "soundstorm": {}, "codec": {}} | (sampling or {})
        self._check()
        # best-of-N for the coarse LM (its sampling.candidates): candidates re-tokenized by the semantic tokenizer
        self.scorer = None if coarse_lm is None else SemanticScorer(
            semantic_tokenizer, codec, coarse_lm.config.acoustic_rate, coarse_lm.config.semantic_rate)

    @property
    def acoustic_config(self) -> Any:
        """Config of the stage that maps semantic ids to codes (the coarse LM's or SoundStorm's): its rates."""
        return self.soundstorm.config if self.soundstorm is not None else self.coarse_lm.config

    @property
    def num_quantizers(self) -> int:
        """RVQ levels the acoustic generator makes (and the codec decodes)."""
        return int(self.soundstorm.config.num_quantizers if self.soundstorm is not None else self.fine_lm.config.num_quantizers)

    def _check(self) -> None:
        """The token contract between the loaded models (``token_contract``), as ``recipe validate`` checks it."""
        sem, codec = self.semantic_tokenizer, self.codec
        levels = getattr(codec, "num_quantizers", None)
        available = {
            "semantic": ("semantic tokenizer", TokenStream("semantic", int(sem.vocab_size), float(sem.frame_rate), 1,
                                                            int(sem.sample_rate))),
            "acoustic": ("codec", TokenStream("acoustic", int(codec.codebook_size), float(codec.frame_rate),
                                              None if levels is None else int(levels), int(codec.sample_rate))),
        }
        models = {"semantic_lm": self.semantic_lm, "soundstorm": self.soundstorm, "coarse_lm": self.coarse_lm,
                  "fine_lm": self.fine_lm}
        bad = []
        for name, model in models.items():
            if model is None:
                continue
            # the codec may hold more levels than were tokenized: it decodes any prefix of them
            wanted = [replace(e, levels=None, min_levels=e.levels or e.min_levels)
                      for e in type(model).expected_streams(model.config)]
            bad += streams_problems(name, wanted, available)
        if int(sem.sample_rate) != int(codec.sample_rate):
            bad.append(f"semantic tokenizer sample_rate={sem.sample_rate} != codec sample_rate={codec.sample_rate}")
        if self.soundstorm is None and self.coarse_lm.config.num_coarse_quantizers != self.fine_lm.config.num_coarse_quantizers:
            bad.append(f"coarse_lm.num_coarse_quantizers={self.coarse_lm.config.num_coarse_quantizers} != "
                       f"fine_lm.num_coarse_quantizers={self.fine_lm.config.num_coarse_quantizers}")
        if bad:
            raise SoundstageError("the generation models do not fit together: " + "; ".join(bad))
        unknown = set(self.sampling["codec"]) - {"levels"}
        levels = self.sampling["codec"].get("levels")
        if unknown or (levels is not None and not 1 <= int(levels) <= self.num_quantizers):
            raise SoundstageError(f"sampling codec {self.sampling['codec']}: the codec takes only 'levels', "
                                  f"1 to the {self.num_quantizers} RVQ levels the acoustic generator makes")

    def decode(self, codes: Tensor) -> Tensor:
        """Waveform [B, T] of generated codes [B, Q, Ta]: their first ``sampling["codec"]["levels"]`` (default all)."""
        return self.codec.decode(codes[:, : self.sampling["codec"].get("levels")])

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
                                         generator=generator, scorer=self.scorer, **self.sampling["coarse"])  # [B, Q', Ta]
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
        return self.decode(out if include_prompt else out[..., codes.shape[-1] :])

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
            return self.decode(self.acoustic_codes(ids, None, generator))
        prompt = prompt[None] if prompt.dim() == 1 else prompt
        return self.decode(self.acoustic_codes(ids, self._prompt_codes(prompt, ids.shape[1], ids.device), generator))
