"""AudioLM's evaluation table (AudioLM section 5, SoundStorm Table 1) on held-out voices.

Rows, each made from the same held-out clips (cut to one common length so generation is batched):
- ``original``: the audio itself (the content floor; its speaker figures are the ceiling);
- ``codec``: the codec's reconstruction (all RVQ levels);
- ``resynthesis``: acoustic tokens generated from the clip's own semantic tokens, no acoustic prompt;
- ``resynthesis_prompted``: the same, with the clip's first ``prompt_seconds`` of codec tokens as the
  acoustic prompt (scored on the generated part only);
- ``continuation``: the semantic LM continues the prompt, then the acoustic stages (no reference text).
Columns: phone error rate (PER, against the corpus' phoneme timings), speaker similarity of the
part after the prompt to the prompt, and acoustic consistency (its first second vs its last second).

Beside the table, ``first_levels``: the codec's reconstruction from only the RVQ levels the acoustic
generator's first step makes (the coarse LM's levels; SoundStorm's level 0), the rest dropped. It is
the content ceiling of that step, so a failed resynthesis can be blamed on it or on the later levels.
For a coarse LM, also ``teacher_forced``: the reconstruction from its most likely codes given the true
codes before each (its accuracy, per level), so what is left between that and resynthesis is what
generating from its own samples costs (drift); and ``generated_coarse_per``: the resynthesis's own
generated codes decoded from the coarse levels alone, so the fine LM's levels are seen to add to the
content or to cost it (a fine LM at chance adds noise).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from soundstage.data.utterances import Utterance

from .phone_recognizer import PhoneRecognizer, edit_rate, phone_errors, phone_sequence
from .speaker_embedding import SpeakerEmbedding
from .uncertainty import figure_intervals

ROWS = ("original", "codec", "resynthesis", "resynthesis_prompted", "continuation")
FIRST_LEVELS = "codec_first_levels"  # the clip output that holds the first-step ceiling (not a table row)
TEACHER_FORCED = "coarse_lm_teacher_forced"  # the coarse LM's argmax codes given the true history, decoded
GENERATED_COARSE = "resynthesis_coarse_levels"  # the resynthesis's generated codes, its coarse levels alone


def first_step_levels(generator: Any) -> int:
    """RVQ levels the acoustic generator makes in its first step: the coarse LM's, or SoundStorm's level 0."""
    return 1 if generator.soundstorm is not None else int(generator.coarse_lm.config.num_coarse_quantizers)


@dataclass
class ProtocolConfig:
    """How many held-out clips, and the prompt / continuation lengths."""

    num_clips: int = 64  # 16 left resynthesis PER +-0.04 between two seeds (docs/evaluation.md)
    prompt_seconds: float = 3.0  # the acoustic prompt (AudioLM and SoundStorm use 3 s)
    min_generated_seconds: float = 1.5  # a clip must extend this far past the prompt
    max_seconds: float = 8.0  # clips are cut to at most this (and to the shortest chosen clip)
    continuation_seconds: float = 3.0
    consistency_seconds: float = 1.0
    batch_size: int = 8
    seed: int = 0


@dataclass
class Clip:
    """A held-out clip: its wave [T], voice, and reference phones (all, and those after the prompt)."""

    key: str
    voice: str
    wave: np.ndarray
    phones: list[str]
    phones_after_prompt: list[str]
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # row -> wave [T'] (continuation: generated part)
    teacher_forced_accuracy: list[float] = field(default_factory=list)  # per coarse level: argmax == true code


def select_clips(utterances: list[Utterance], sample_rate: int, cfg: ProtocolConfig) -> list[Clip]:
    """Up to ``num_clips`` utterances long enough for the prompt (longest first, voices round robin), cut to one length."""
    need = cfg.prompt_seconds + cfg.min_generated_seconds
    usable = [u for u in utterances if u.voice and phone_sequence(u.phonemes) and len(u.wave) >= need * sample_rate]
    by_voice: dict[str, list[Utterance]] = {}
    for u in sorted(usable, key=lambda u: -len(u.wave)):
        by_voice.setdefault(u.voice, []).append(u)  # type: ignore[arg-type]
    chosen: list[Utterance] = []
    while len(chosen) < cfg.num_clips and any(by_voice.values()):
        for v in sorted(by_voice):
            if by_voice[v] and len(chosen) < cfg.num_clips:
                chosen.append(by_voice[v].pop(0))
    if not chosen:
        return []
    seconds = min(cfg.max_seconds, min(len(u.wave) for u in chosen) / sample_rate)
    n = int(seconds * sample_rate)
    clips = []
    for u in chosen:
        inside = [p for p in u.phonemes if (float(p["start"]) + float(p["end"])) / 2 < seconds]
        after = [p for p in inside if (float(p["start"]) + float(p["end"])) / 2 >= cfg.prompt_seconds]
        clips.append(Clip(u.key, str(u.voice), u.wave[:n].astype(np.float32), phone_sequence(inside), phone_sequence(after)))
    return clips


@torch.no_grad()
def generate_rows(pipeline: Any, clips: list[Clip], cfg: ProtocolConfig, log: Callable[[str], None] = print) -> None:
    """Fill every clip's ``outputs`` for the five rows, batched ``batch_size`` clips at a time."""
    gen = pipeline.generator
    sr = pipeline.sample_rate
    device = next(pipeline.models["codec"].parameters()).device
    prompt_n = int(cfg.prompt_seconds * sr)
    Q = gen.num_quantizers
    levels = first_step_levels(gen)
    # the fine LM's levels reach the scored audio only when more than the coarse levels are decoded (--decode-levels)
    with_fine = gen.soundstorm is None and int(gen.sampling["codec"].get("levels") or Q) > levels
    for start in range(0, len(clips), cfg.batch_size):
        batch = clips[start : start + cfg.batch_size]
        log(f"[eval] generating the protocol rows for clips {start + 1}-{start + len(batch)} of {len(clips)}")
        wave = torch.from_numpy(np.stack([c.wave for c in batch])).to(device)  # [B, T]
        rng = torch.Generator(device=device).manual_seed(cfg.seed + start)
        codes = gen.codec.encode(wave, num_quantizers=Q)
        codec = gen.codec.decode(codes)
        first = gen.codec.decode(codes[:, :levels])
        ids = gen.semantic_tokenizer.encode(wave)  # [B, Ts]
        forced = None
        if gen.soundstorm is None:
            coarse = gen.sampling["coarse"]
            predicted = gen.coarse_lm.teacher_forced(ids, codes, guidance=coarse.get("guidance"),
                                                     level_guidance=coarse.get("level_guidance"))
            forced = gen.codec.decode(predicted.to(codes.device))
            accuracy = (predicted.cpu() == codes[:, :levels].cpu()).float().mean(-1)  # [B, Q']
        resyn_codes = gen.acoustic_codes(ids, None, rng)  # what from_semantic(ids) decodes, kept for its coarse levels
        resyn = gen.decode(resyn_codes)
        resyn_coarse = gen.codec.decode(resyn_codes[:, :levels]) if with_fine else None
        prompted = gen.from_semantic(ids, generator=rng, prompt=wave[:, :prompt_n])
        cont = gen.continue_audio(wave[:, :prompt_n], cfg.continuation_seconds, include_prompt=False, generator=rng)
        for i, c in enumerate(batch):
            c.outputs = {"original": c.wave, "codec": _np(codec[i]), "resynthesis": _np(resyn[i]),
                         "resynthesis_prompted": _np(prompted[i]), "continuation": _np(cont[i]),
                         FIRST_LEVELS: _np(first[i])}
            if forced is not None:
                c.outputs[TEACHER_FORCED] = _np(forced[i])
                c.teacher_forced_accuracy = accuracy[i].tolist()
            if resyn_coarse is not None:
                c.outputs[GENERATED_COARSE] = _np(resyn_coarse[i])


def _np(x: torch.Tensor) -> np.ndarray:
    return x.float().cpu().numpy()


def _after_prompt(row: str, wave: np.ndarray, prompt_n: int) -> np.ndarray:
    """The part of a row's output that follows the prompt (a continuation holds only that part)."""
    return wave if row == "continuation" else wave[prompt_n:]


def score_rows(clips: list[Clip], sample_rate: int, cfg: ProtocolConfig, phones: PhoneRecognizer | None,
               speaker: SpeakerEmbedding | None, first_levels: int | None = None) -> dict[str, Any]:
    """The table: per row PER (whole clip and after the prompt), speaker similarity to the prompt, consistency;
    plus the references (same speaker = ceiling, different speaker = chance, mismatched transcripts = PER chance)
    and, given ``first_levels``, the first-step ceiling (PER of the reconstruction from those levels).
    ``per_clip`` keeps each clip's counts and similarities, ``intervals`` every figure's 95% bootstrap interval."""
    prompt_n = int(cfg.prompt_seconds * sample_rate)
    edge = int(cfg.consistency_seconds * sample_rate)
    table: dict[str, Any] = {row: {} for row in ROWS}
    per_clip: dict[str, dict[str, list[float]]] = {row: {} for row in ROWS}
    refs: dict[str, Any] = {}

    def score_phones(row: str, waves: list[np.ndarray], references: list[list[str]], suffix: str = "") -> list[list[str]]:
        hyp = phones.transcribe([torch.from_numpy(w) for w in waves])
        edits, lengths = phone_errors(hyp, references)
        per_clip.setdefault(row, {}).update({f"edits{suffix}": edits, f"phones{suffix}": lengths})
        table.setdefault(row, {})[f"per{suffix}"] = edit_rate(edits, lengths)
        return hyp

    for row in ROWS:
        outs = [c.outputs[row] for c in clips]
        after = [_after_prompt(row, w, prompt_n) for w in outs]
        if phones is not None and row != "continuation":
            if row != "resynthesis_prompted":  # its first seconds are the prompt's codec tokens, not generated
                hyp = score_phones(row, outs, [c.phones for c in clips])
                if row == "original":  # each transcript against another clip's reference
                    edits, lengths = phone_errors(hyp[1:] + hyp[:1], [c.phones for c in clips])
                    per_clip["mismatched_transcripts"] = {"edits": edits, "phones": lengths}
                    refs["per_mismatched_transcripts"] = edit_rate(edits, lengths)
            score_phones(row, after, [c.phones_after_prompt for c in clips], "_after_prompt")
        if speaker is not None:
            prompts = [torch.from_numpy(c.wave[:prompt_n]) for c in clips]
            sims = speaker.similarity(prompts, [torch.from_numpy(w) for w in after]).float().tolist()
            per_clip[row]["speaker_similarity"] = sims
            table[row]["speaker_similarity"] = float(np.mean(sims))
            long_enough = [w for w in after if len(w) >= 2 * edge]
            if long_enough:
                cons = speaker.similarity([torch.from_numpy(w[:edge]) for w in long_enough],
                                          [torch.from_numpy(w[-edge:]) for w in long_enough]).float().tolist()
                per_clip[row]["consistency"] = cons
                table[row]["consistency"] = float(np.mean(cons))
    if speaker is not None:
        prompts = [torch.from_numpy(c.wave[:prompt_n]) for c in clips]
        rests = [torch.from_numpy(c.wave[prompt_n:]) for c in clips]
        refs["same_speaker"] = table["original"]["speaker_similarity"]
        others = [j for j in range(len(clips))]
        pairs = [(i, next((j for j in others[i + 1 :] + others[:i] if clips[j].voice != clips[i].voice), None))
                 for i in range(len(clips))]
        pairs = [(i, j) for i, j in pairs if j is not None]
        if pairs:
            sims = speaker.similarity([prompts[i] for i, _ in pairs], [rests[j] for _, j in pairs]).float().tolist()
            per_clip["different_speaker"] = {"speaker_similarity": sims}
            refs["different_speaker"] = float(np.mean(sims))
    ceiling: dict[str, Any] = {}
    if first_levels is not None and phones is not None and all(FIRST_LEVELS in c.outputs for c in clips):
        score_phones(FIRST_LEVELS, [c.outputs[FIRST_LEVELS] for c in clips], [c.phones for c in clips])
        ceiling = {"levels": first_levels, "per": table.pop(FIRST_LEVELS)["per"]}
        if all(TEACHER_FORCED in c.outputs for c in clips):
            score_phones(TEACHER_FORCED, [c.outputs[TEACHER_FORCED] for c in clips], [c.phones for c in clips])
            ceiling["teacher_forced_per"] = table.pop(TEACHER_FORCED)["per"]
            ceiling["teacher_forced_accuracy"] = np.mean([c.teacher_forced_accuracy for c in clips], axis=0).round(4).tolist()
        if all(GENERATED_COARSE in c.outputs for c in clips):
            score_phones(GENERATED_COARSE, [c.outputs[GENERATED_COARSE] for c in clips], [c.phones for c in clips])
            ceiling["generated_coarse_per"] = table.pop(GENERATED_COARSE)["per"]
    out = {"rows": table, "references": refs, "first_levels": ceiling, "clips": len(clips),
           "clip_seconds": round(len(clips[0].wave) / sample_rate, 3) if clips else 0.0,
           "prompt_seconds": cfg.prompt_seconds, "continuation_seconds": cfg.continuation_seconds,
           "clip_keys": [c.key for c in clips], "per_clip": {row: arrays for row, arrays in per_clip.items() if arrays}}
    out["intervals"] = figure_intervals(out)
    return out
