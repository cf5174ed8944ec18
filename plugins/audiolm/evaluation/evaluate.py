"""``evaluate_run``: every figure of a finished run, written to ``RUN_DIR/eval/eval.json`` and ``report.html``.

The figures follow AudioLM's protocol (``protocol.py``): content as phone error rate, voice as
speaker similarity, plausibility as semantic-LM perplexity, each beside its floor and ceiling, and
a diagnosis that names the stage that misses its target. The measuring models are trained on the
run's training voices once per corpus and cached (``eval_models.py``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from soundstage.checkpoint import write_json_atomic
from soundstage.errors import SoundstageError
from soundstage.data.audio_io import write_wav
from soundstage.data.utterances import Utterance, read_utterances

from .codec_eval import codec_metrics
from .curves import stage_curves
from .diagnosis import diagnose
from .eval_models import EvalModels, load_or_train, undertrained
from .lm_eval import lm_validation
from .media import write_spectrogram
from .ngram_baseline import ngram_baselines
from .phone_eval import semantic_phone_metrics
from .phone_recognizer import PhoneRecognizerConfig
from .plausibility import semantic_perplexity
from .protocol import ROWS, Clip, ProtocolConfig, first_step_levels, generate_rows, score_rows, select_clips
from .report import write_report
from .run_dir import LM_ROLES, RunDir
from .speaker_embedding import SpeakerEmbeddingConfig
from .token_probe import TokenProbeConfig, semantic_token_probe
from .word_error import WordRecognizer, english_texts, word_error_rows

EVAL_DIR = "eval"


@dataclass
class EvalConfig:
    """What ``soundstage eval`` measures and on how much data."""

    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    phones: PhoneRecognizerConfig = field(default_factory=PhoneRecognizerConfig)
    speaker: SpeakerEmbeddingConfig = field(default_factory=SpeakerEmbeddingConfig)
    probe: TokenProbeConfig = field(default_factory=TokenProbeConfig)
    probe_utterances: int = 200  # held-out utterances the phone probe on semantic ids reads (0 = no probe)
    num_utterances: int = 16  # held-out utterances for the codec's signal figures and PNMI
    max_seconds: float = 10.0  # each of those is cut to this
    lm_batches: int = 50  # validation token batches per LM stage
    lm_batch_size: int = 8
    max_train_utterances: int = 4000  # training utterances the measuring models learn from
    cache_dir: str = "~/.cache/soundstage/eval_models"
    media_clips: int = 6  # clips with audio players and spectrograms in the report
    word_utterances: int = 8  # whole held-out English utterances with text for the word error rates (0 = off)
    acoustic: str | None = None  # coarse_fine | soundstorm, for a run that trained both (default: coarse_fine)
    # per-stage overrides of the models' own sampling, as Pipeline.load takes them: {"coarse": {"candidates": 4}}
    sampling: dict[str, dict[str, Any]] = field(default_factory=dict)
    device: str = "cpu"
    seed: int = 0
    out_dir: str | None = None  # where eval.json, report.html and the media go (default RUN_DIR/eval)


def evaluate_run(run_dir: str | Path, config: EvalConfig | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Compute all figures of ``run_dir``; write ``eval/eval.json``, ``eval/report.html`` and its media."""
    cfg = config or EvalConfig()
    torch.manual_seed(cfg.seed)
    run = RunDir.open(run_dir, cfg.device, cfg.acoustic)
    out_dir = Path(cfg.out_dir).expanduser() if cfg.out_dir else run.path / EVAL_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"run_dir": str(run.path), "recipe": run.recipe.get("name"),
                               "description": run.recipe.get("description"), "roles": dict(run.roles),
                               "config": dataclasses.asdict(cfg), "notes": []}
    overrides = {stage: values for stage, values in cfg.sampling.items() if values}
    if overrides:
        figures["notes"].append(f"generated with these sampling overrides of the models' own settings: {overrides}")
    codec = run.model("codec")
    sr = int(codec.sample_rate)
    train_shards, val_shards = run.audio_shards()
    if not val_shards:
        figures["notes"].append("no validation audio shards: every figure uses training audio")
    held_out = read_utterances(val_shards or train_shards, sr)
    first = [Utterance(u.key, u.wave[: int(cfg.max_seconds * sr)], u.meta) for u in held_out[: cfg.num_utterances]]

    log(f"[eval] codec on {len(first)} held-out utterances")
    figures["codec"] = codec_metrics(codec, first, cfg.max_seconds)
    figures["lm"] = _lm_figures(run, cfg, log)
    log("[eval] semantic tokens vs. phonemes")
    figures["semantic_tokens"] = semantic_phone_metrics(run.model("semantic_tokenizer"), first, cfg.max_seconds)
    if cfg.probe_utterances > 0 and "skipped" not in figures["semantic_tokens"]:
        figures["semantic_tokens"]["probe"] = semantic_token_probe(
            run.model("semantic_tokenizer"), run.model_file("semantic_tokenizer"), train_shards,
            held_out[: cfg.probe_utterances], cfg.probe, cfg.cache_dir, cfg.max_train_utterances, log)

    models = load_or_train(train_shards, sr, cfg.phones, cfg.speaker, cfg.cache_dir, cfg.max_train_utterances, log)
    figures["measuring_models"] = models.facts
    figures["notes"] += undertrained(models.facts, cfg.phones, cfg.speaker)
    clips = select_clips(held_out, sr, cfg.protocol)
    if clips:
        _protocol(run, cfg, clips, models, figures, log, held_out)
    else:
        figures["notes"].append(
            f"no held-out utterance with voice, phonemes and at least {cfg.protocol.prompt_seconds + cfg.protocol.min_generated_seconds} s: "
            "the protocol table is empty")
    figures["diagnosis"] = diagnose(figures)
    curves = stage_curves(run.path, list(run.recipe.get("stages", {})))
    media = _write_media(out_dir, clips[: cfg.media_clips], sr)
    write_json_atomic(out_dir / "eval.json", _finite(figures))
    write_report(out_dir / "report.html", _finite(figures), media, curves)
    log(f"[eval] wrote {out_dir / 'eval.json'} and {out_dir / 'report.html'}")
    return figures


def _lm_figures(run: RunDir, cfg: EvalConfig, log: Callable[[str], None]) -> dict[str, Any]:
    """Each LM stage's validation loss / perplexity; the semantic LM's next to unigram and bigram baselines."""
    out: dict[str, Any] = {}
    for role in [r for r in LM_ROLES if r in run.roles]:
        val_tokens = run.val_tokens(role)
        log(f"[eval] {role} validation perplexity")
        if not val_tokens:
            out[role] = {"stage": run.roles[role], "skipped": "no validation token shards"}
            continue
        out[role] = {"stage": run.roles[role], **lm_validation(run.model(role), val_tokens, cfg.lm_batch_size, cfg.lm_batches)}
        train_tokens = run.train_tokens(role)
        if role == "semantic_lm" and train_tokens:
            out[role]["baselines"] = ngram_baselines(run.model(role), train_tokens, val_tokens, cfg.lm_batch_size,
                                                     max_val_batches=cfg.lm_batches)
    return out


def _words(pipeline: Any, held_out: list[Utterance], cfg: EvalConfig, figures: dict[str, Any],
           log: Callable[[str], None]) -> None:
    """Word error rates of whole English utterances with text (``word_error.py``), or a note why there are none."""
    if cfg.word_utterances <= 0:
        return
    utterances = english_texts(held_out, cfg.word_utterances)
    if not utterances:
        figures["notes"].append("no held-out utterance with English text: no word error rates")
        return
    try:
        recognizer = WordRecognizer(pipeline.sample_rate)
    except SoundstageError as exc:
        figures["notes"].append(f"no word error rates: {exc}")
        return
    figures["words"] = word_error_rows(pipeline, utterances, recognizer, log, cfg.seed)


def _protocol(run: RunDir, cfg: EvalConfig, clips: list[Clip], models: EvalModels, figures: dict[str, Any],
              log: Callable[[str], None], held_out: list[Utterance]) -> None:
    from soundstage.plugins.audiolm.pipeline import Pipeline

    pipeline = Pipeline({role: run.model(role) for role in run.roles}, cfg.sampling)
    sr = pipeline.sample_rate
    generate_rows(pipeline, clips, cfg.protocol, log)
    log("[eval] scoring: phone error rates and speaker similarities")
    figures["protocol"] = score_rows(clips, sr, cfg.protocol, models.phones, models.speaker,
                                     first_step_levels(pipeline.generator))
    if models.phones is None:
        figures["notes"].append("no phoneme timings in the training audio: no phone recognizer, no PER")
    if models.speaker is None:
        figures["notes"].append("fewer than two voices in the training audio: no speaker model, no voice figures")
    prompt_n = int(cfg.protocol.prompt_seconds * sr)
    _words(pipeline, held_out, cfg, figures, log)
    figures["protocol"]["semantic_plausibility"] = semantic_perplexity(
        run.model("semantic_tokenizer"), run.model("semantic_lm"),
        [c.outputs["continuation"] for c in clips], [c.wave[prompt_n:] for c in clips])


def _write_media(out_dir: Path, clips: list[Clip], sample_rate: int) -> list[dict[str, Any]]:
    """Per clip: a WAV of every row and one spectrogram of them all (top to bottom in ``ROWS`` order)."""
    entries = []
    for i, c in enumerate(clips):
        if not c.outputs:
            continue
        files = {row: f"clip{i:02d}_{row}.wav" for row in ROWS}
        for row, name in files.items():
            write_wav(out_dir / name, c.outputs[row], sample_rate)
        image = f"clip{i:02d}_spectrogram.png"
        write_spectrogram(out_dir / image, [c.outputs[row] for row in ROWS], sample_rate)
        entries.append({"key": c.key, "voice": c.voice, "wavs": files, "spectrogram": image})
    return entries


def _finite(value: Any) -> Any:
    """NaN / inf -> None, so eval.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
