"""Which stage fails: the evaluation's figures against the targets a learning AudioLM run reaches,
each check naming the stage it implicates (so "only noise" becomes "the codec loses the phones")."""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .protocol import GENERATED_COARSE
from .uncertainty import interval, paired_resamples

# The targets (issue "AudioLM that demonstrably learns"; the paper's resynthesis WER is 1.5-1.8x SoundStream's).
CODEC_PER_FACTOR = 1.3  # codec reconstruction PER at most this times the original's
RESYNTHESIS_PER_FACTOR = 2.0  # resynthesis-from-semantic PER at most this times the codec's
VOICE_SHARE = 0.8  # continuation speaker similarity at least this share of real same-speaker audio's
VOICE_MARGIN = 0.5  # ... and at least this share of the way from different-speaker to same-speaker


def _num(d: dict[str, Any], *keys: str) -> float | None:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return float(d) if isinstance(d, (int, float)) and math.isfinite(float(d)) else None


def diagnose(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per check: what is measured, the value, the target, pass/fail (None: not measurable), the stage blamed."""
    roles = figures.get("roles") or {"codec": "codec", "coarse_lm": "coarse_lm", "fine_lm": "fine_lm", "semantic_lm": "semantic_lm"}
    acoustic = [roles[r] for r in ("coarse_lm", "fine_lm", "soundstorm") if r in roles]
    voice_stage = roles.get("coarse_lm") or roles.get("soundstorm") or "the acoustic generator"
    codec_stage, semantic_stage = roles.get("codec", "codec"), roles.get("semantic_lm", "semantic_lm")
    rows = figures.get("protocol", {}).get("rows", {})
    refs = figures.get("protocol", {}).get("references", {})
    checks: list[dict[str, Any]] = []
    sampled = paired_resamples(figures.get("protocol", {}))

    def add(name: str, value: float | None, target: float | None, ok: bool | None, stage: str, why: str,
            blocked: str | None = None, margin: Callable[[dict], np.ndarray] | None = None) -> None:
        """``blocked``: why the check cannot disagree here (an upstream stage already fails), so it is not judged.
        ``margin``: the check's margin (positive: passes) from resampled rows, for its 95% interval over clips."""
        entry = {"check": name, "value": value, "target": target, "passed": None if blocked else ok,
                 "stage": stage, "if_failed": why, "not_judged": blocked}
        if margin is not None and sampled is not None and value is not None and target is not None:
            try:
                span = interval(margin(sampled))
            except KeyError:  # a row this run's table lacks
                span = None
            if span is not None:  # resolved: the clips put the whole interval on one side of the target
                entry |= {"margin_interval": span, "resolved": bool(span[0] > 0 or span[1] < 0)}
        checks.append(entry)

    def voice_target(s: dict) -> np.ndarray:
        same, diff = s["original"]["speaker_similarity"], s["different_speaker"]["speaker_similarity"]
        return np.maximum(VOICE_SHARE * same, diff + VOICE_MARGIN * (same - diff))

    orig, codec, resyn = _num(rows, "original", "per"), _num(rows, "codec", "per"), _num(rows, "resynthesis", "per")
    chance = _num(refs, "per_mismatched_transcripts")
    ok = None if orig is None or chance is None else orig < 0.5 * chance
    add("phone recognizer reads the original audio (PER below half of mismatched transcripts')", orig,
        None if chance is None else 0.5 * chance, ok, "evaluation",
        "the measuring model is not trustworthy on this corpus: train it longer (`soundstage eval --recognizer-steps`)",
        margin=lambda s: 0.5 * s["mismatched_transcripts"]["per"] - s["original"]["per"])
    target = None if orig is None else CODEC_PER_FACTOR * orig
    add(f"codec reconstruction PER <= {CODEC_PER_FACTOR} x original", codec, target,
        None if codec is None or target is None else codec <= target, codec_stage,
        "the codec loses phones: train it longer, or with more RVQ levels / channels",
        margin=lambda s: CODEC_PER_FACTOR * s["original"]["per"] - s["codec"]["per"])
    target = None if codec is None else RESYNTHESIS_PER_FACTOR * codec
    ceiling = figures.get("protocol", {}).get("first_levels") or {}
    first_per, first_levels = _num(ceiling, "per"), ceiling.get("levels")
    first_stage = roles.get("coarse_lm") or roles.get("soundstorm") or "the acoustic generator"
    probe = _num(figures, "semantic_tokens", "probe", "per")
    probe_ok = None if probe is None or target is None else probe <= target  # None: no probe ran
    tokens = "or the semantic tokens carry too little of the phones (see semantic_tokens.pnmi)"
    # the ids pass, but the codec's own loss (its PER over the original's) is more than they leave below the target
    codec_cost = None if codec is None or orig is None else codec - orig
    no_room = bool(probe_ok and codec_cost is not None and target - probe < codec_cost)
    if no_room:
        tokens = (f"and the semantic tokens leave it no room: a probe on the ids alone reads them at PER {probe:.2f}, "
                  f"{target - probe:.2f} below the target, less than the codec alone adds to the original's PER "
                  f"({codec_cost:.2f}): ids that carry more of the phones (a larger or longer-trained HuBERT, "
                  "benchmarks/semantic_tokens.py) lower the ceiling every acoustic stage works under")
    elif probe_ok:
        tokens = f"not the semantic tokens: a probe on the ids alone reads them at PER {probe:.2f}"
    why = f"the acoustic LMs do not follow the semantic tokens (see their validation curves), {tokens}"
    forced = _num(ceiling, "teacher_forced_per")
    if first_per is not None and target is not None:
        if first_per <= target and forced is not None:  # split the first step's loss: accuracy, then drift
            accuracy = " / ".join(f"{a:.2f}" for a in ceiling.get("teacher_forced_accuracy", []))
            where = (f"its accuracy is the limit: its most likely codes given the true history already read at "
                     f"PER {forced:.2f}, above the target (level accuracy {accuracy}): train it longer or larger, or distil the "
                     "semantic ids into the codec's first level (codec semantic_weight: content up, voice down "
                     "at small sizes, docs/codec.md)"
                     if forced > target else
                     f"generating from its own samples is the limit: given the true history its codes read at PER "
                     f"{forced:.2f}, within the target (level accuracy {accuracy}), and drift takes it to "
                     f"{resyn:.2f}: sampling.guidance, aligned_context, input_noise (docs/training_guide.md)"
                     if resyn is not None else f"given the true history its codes read at PER {forced:.2f}")
            why = (f"the codec's first {first_levels} level(s) alone read at PER {first_per:.2f}, within the target, "
                   f"so {first_stage} loses the rest; {where}; {tokens}")
        elif first_per <= target:  # the first step's levels alone would pass: the first step is what fails
            why = (f"the codec's first {first_levels} level(s) alone read at PER {first_per:.2f}, within the target: "
                   f"{first_stage} does not follow the semantic tokens (see its per-level validation accuracy; "
                   "a coarse LM that drifts from them while generating: aligned_semantic, aligned_context, "
                   f"condition_dropout with sampling.guidance, docs/training_guide.md), {tokens}")
        else:
            why = (f"the codec's first {first_levels} level(s) alone read at PER {first_per:.2f}, above the target: "
                   "the phones need the later levels too, so both acoustic steps must learn them")
    if probe_ok is False:
        why = (f"the semantic tokens limit it: a probe that reads only the semantic ids reaches PER {probe:.2f}, "
               "above the target, so no acoustic stage can")
    unreadable = None
    if codec is not None and chance is not None and codec >= 0.5 * chance:
        unreadable = f"the codec's reconstructions are nearly unreadable (PER {codec:.2f}, chance {chance:.2f}): fix the codec first"
    tokenizer_stage = roles.get("semantic_tokenizer", "semantic")
    # the stage to blame: the probe, when it ran, says whether the ids or the acoustic stages lose the phones
    resyn_stage = {None: " / ".join(acoustic) + " (or the semantic tokens)", True: " / ".join(acoustic),
                   False: tokenizer_stage}[probe_ok] + (f" and {tokenizer_stage}" if no_room else "")
    add(f"resynthesis-from-semantic PER <= {RESYNTHESIS_PER_FACTOR} x codec", resyn, target,
        None if resyn is None or target is None else resyn <= target, resyn_stage, why, unreadable,
        margin=lambda s: RESYNTHESIS_PER_FACTOR * s["codec"]["per"] - s["resynthesis"]["per"])
    add(f"semantic tokens keep the phones (a probe on the ids alone: PER <= {RESYNTHESIS_PER_FACTOR} x codec)", probe,
        target, probe_ok, tokenizer_stage,
        "the semantic ids lose phones that resynthesis needs: more or longer HuBERT training, another layer, "
        "more clusters (benchmarks/semantic_tokens.py)", unreadable)
    coarse_only, fine_stage = _num(ceiling, "generated_coarse_per"), roles.get("fine_lm")
    if fine_stage and coarse_only is not None:
        fine_ppl = _num(figures, "lm", "fine_lm", "ppl")
        at = "" if fine_ppl is None else f" (its validation perplexity {fine_ppl:.0f} per code)"
        add("the fine LM's levels do not cost content (PER with them <= its generated coarse levels' alone)",
            resyn, coarse_only, None if resyn is None else resyn <= coarse_only, fine_stage,
            f"the fine levels it adds are closer to noise than to the speech{at}: train it longer or larger, "
            "sample it greedily (its `sampling.temperature: 0`, or `--fine-temperature 0`: near chance, its most "
            "likely codes kept 0.05 more of the voice at equal PER, docs/training_history.md session 23), or "
            "leave its levels out (`--decode-levels` = the coarse LM's levels; a fine LM at chance costs a little "
            "content and no voice, session 20)",
            unreadable, margin=lambda s: s[GENERATED_COARSE]["per"] - s["resynthesis"]["per"])
    cont, same, diff = _num(rows, "continuation", "speaker_similarity"), _num(refs, "same_speaker"), _num(refs, "different_speaker")
    target = None if same is None or diff is None else max(VOICE_SHARE * same, diff + VOICE_MARGIN * (same - diff))
    codec_voice = _num(rows, "codec", "speaker_similarity")
    voiceless = None
    if codec_voice is not None and target is not None and codec_voice < target:
        voiceless = f"the codec's own reconstructions miss the voice target ({codec_voice:.3f} < {target:.3f}): fix the codec first"
    add(f"continuation keeps the prompt's voice (>= {VOICE_SHARE} x same-speaker, well above different-speaker)", cont,
        target, None if cont is None or target is None else cont >= target, voice_stage,
        "the acoustic generator does not carry the acoustic prompt's voice into the continuation", voiceless,
        margin=lambda s: s["continuation"]["speaker_similarity"] - voice_target(s))
    add("codec keeps the voice (reconstruction vs prompt, same target)", codec_voice, target,
        None if codec_voice is None or target is None else codec_voice >= target, codec_stage,
        "the codec loses the speaker's timbre: train it longer",
        margin=lambda s: s["codec"]["speaker_similarity"] - voice_target(s))
    lm_ppl, bigram = _num(figures, "lm", "semantic_lm", "ppl"), _num(figures, "lm", "semantic_lm", "baselines", "bigram_ppl")
    add("semantic LM validation perplexity < bigram baseline", lm_ppl, bigram,
        None if lm_ppl is None or bigram is None else lm_ppl < bigram, semantic_stage,
        "the semantic LM learned no more than one-step transitions: train it longer or regularise it (dropout)")
    return checks
