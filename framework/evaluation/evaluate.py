"""``evaluate_run``: every figure of a finished run, written to ``RUN_DIR/eval/eval.json`` and ``report.html``."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from soundstage.checkpoint import write_json_atomic

from .codec_eval import codec_metrics
from .continuation_eval import MIN_PROMPT_SECONDS, Example, generate_examples, semantic_perplexity, voice_consistency
from .lm_eval import lm_validation
from .media import write_spectrogram, write_wav
from .phone_eval import semantic_phone_metrics
from .report import write_report
from .run_dir import LM_ROLES, RunDir
from .utterances import Utterance, read_utterances
from .voice_classifier import VoiceClassifierConfig
from .voice_eval import split_voices, train_voice_classifier

EVAL_DIR = "eval"


@dataclass
class EvalConfig:
    """What ``soundstage eval`` measures and on how much data."""

    num_prompts: int = 4  # prompts continued for the continuation figures
    seconds: float = 2.0  # length of each continuation (and of the voice classifier's clips)
    prompt_seconds: float = 2.0  # prompt length (shorter utterances give shorter prompts, >= 0.5 s)
    num_utterances: int = 16  # held-out utterances for the codec and phone figures
    max_seconds: float = 10.0  # each held-out utterance is cut to this
    lm_batches: int = 50  # validation token batches per LM stage
    lm_batch_size: int = 8
    max_train_utterances: int = 400  # training utterances read for the voice classifier
    max_voices: int = 20
    classifier: VoiceClassifierConfig = field(default_factory=VoiceClassifierConfig)
    device: str = "cpu"
    seed: int = 0


def evaluate_run(run_dir: str | Path, config: EvalConfig | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Compute all figures of ``run_dir``; write ``eval/eval.json``, ``eval/report.html`` and its media."""
    cfg = config or EvalConfig()
    torch.manual_seed(cfg.seed)
    run = RunDir.open(run_dir, cfg.device)
    out_dir = run.path / EVAL_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"run_dir": str(run.path), "roles": dict(run.roles), "config": dataclasses.asdict(cfg), "notes": []}

    codec = run.model("codec")
    sr = int(codec.sample_rate)
    train_shards, val_shards = run.audio_shards()
    if not val_shards:
        figures["notes"].append("no validation audio shards: codec and phone figures use training audio")
    held_out = read_utterances(val_shards or train_shards, sr, cfg.num_utterances)
    held_out = [Utterance(u.key, u.wave[: int(cfg.max_seconds * sr)], u.meta) for u in held_out]

    log(f"[eval] codec on {len(held_out)} held-out utterances")
    figures["codec"] = codec_metrics(codec, held_out, cfg.max_seconds)
    figures["lm"] = {}
    for role in LM_ROLES:
        val_tokens = run.val_tokens(role)
        log(f"[eval] {role} validation perplexity")
        if not val_tokens:
            figures["lm"][role] = {"stage": run.roles[role], "skipped": "no validation token shards"}
            continue
        stats = lm_validation(run.model(role), val_tokens, cfg.lm_batch_size, cfg.lm_batches)
        figures["lm"][role] = {"stage": run.roles[role], **stats}
    log("[eval] semantic tokens vs. phonemes")
    tokenizer = run.model("semantic_tokenizer")
    figures["semantic_tokens"] = semantic_phone_metrics(tokenizer, held_out, cfg.max_seconds)

    examples = _continuations(run, cfg, train_shards, held_out, figures, log)
    media = _write_media(out_dir, examples, sr)
    write_json_atomic(out_dir / "eval.json", _finite(figures))
    write_report(out_dir / "report.html", figures, media)
    log(f"[eval] wrote {out_dir / 'eval.json'} and {out_dir / 'report.html'}")
    return figures


def _continuations(run: RunDir, cfg: EvalConfig, train_shards: str | None, held_out: list[Utterance],
                   figures: dict[str, Any], log: Callable[[str], None]) -> list[Example]:
    from soundstage.inference import ROLES, Pipeline

    sr = int(run.model("codec").sample_rate)
    long_enough = 2 * MIN_PROMPT_SECONDS * sr
    train = [u for u in read_utterances(train_shards, sr, cfg.max_train_utterances) if len(u.wave) >= long_enough] if train_shards else []
    split = split_voices(train, cfg.max_voices)
    classifier = None
    if len(split.voices) >= 2:
        log(f"[eval] voice classifier on {len(split.voices)} training voices")
        classifier, figures["voice_classifier"] = train_voice_classifier(split, sr, cfg.seconds, cfg.classifier)
        # round robin over voices so the prompts cover as many voices as possible
        queues = [list(split.held_out[v]) for v in split.voices]
        prompts = []
        while len(prompts) < cfg.num_prompts and any(queues):
            for v, q in zip(split.voices, queues):
                if q and len(prompts) < cfg.num_prompts:
                    prompts.append((q.pop(0), v))
        figures["notes"].append(
            "voice figures: validation voices are held out of training, so the voice classifier is trained and "
            "tested on a split of the TRAINING voices' utterances; prompts are those voices' utterances the "
            "classifier never saw (the LMs did see them in training)"
        )
    else:
        figures["voice_classifier"] = {"skipped": "fewer than two training voices with two or more utterances"}
        prompts = [(u, u.voice) for u in held_out if len(u.wave) >= long_enough][: cfg.num_prompts]

    log(f"[eval] continuing {len(prompts)} prompts by {cfg.seconds} s")
    pipeline = Pipeline({role: run.model(role) for role in ROLES})
    examples = generate_examples(pipeline, prompts, cfg.prompt_seconds, cfg.seconds, cfg.seed)
    cont: dict[str, Any] = {"prompts": len(examples), "seconds": cfg.seconds, "prompt_seconds": cfg.prompt_seconds}
    if classifier is not None:
        cont["voice"] = voice_consistency(classifier, examples)
    else:
        cont["voice"] = {"skipped": figures["voice_classifier"]["skipped"]}
    cont["semantic"] = semantic_perplexity(run.model("semantic_tokenizer"), run.model("semantic_lm"), examples)
    figures["continuation"] = cont
    return examples


def _write_media(out_dir: Path, examples: list[Example], sample_rate: int) -> list[dict[str, Any]]:
    """WAVs and a spectrogram per example; returns the report's example entries (relative file names)."""
    entries = []
    for i, e in enumerate(examples):
        names = {"prompt_wav": f"prompt_{i:02d}.wav", "continuation_wav": f"continuation_{i:02d}.wav",
                 "real_wav": f"real_{i:02d}.wav", "spectrogram": f"spectrogram_{i:02d}.png"}
        write_wav(out_dir / names["prompt_wav"], e.prompt, sample_rate)
        write_wav(out_dir / names["continuation_wav"], e.continuation, sample_rate)
        write_wav(out_dir / names["real_wav"], e.real, sample_rate)
        write_spectrogram(out_dir / names["spectrogram"], [e.prompt, e.continuation, e.real], sample_rate)
        entries.append({"key": e.key, "voice": e.voice, "predicted_voice": e.predicted_voice,
                        "real_predicted_voice": e.real_predicted_voice, **names})
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
