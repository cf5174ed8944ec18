"""The evaluation's own models (phone recognizer, speaker embedding), trained once per training corpus
and cached like the corpus: the cache key covers the training shards' content, the model configs
and the sample rate, so another corpus or setting trains anew and a changed corpus never reuses a
stale model. Weights are stored as safetensors next to a JSON of what rebuilds the model."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from soundstage.checkpoint import build_dir_once
from soundstage.data.utterances import Utterance

from .phone_recognizer import PhoneRecognizer, PhoneRecognizerConfig
from .speaker_embedding import SpeakerEmbedding, SpeakerEmbeddingConfig

EVAL_MODELS_VERSION = 2  # bump when the models or their training change


@dataclass
class EvalModels:
    """The trained measuring models (None where the corpus lacks the labels one needs) and how they were made."""

    phones: PhoneRecognizer | None
    speaker: SpeakerEmbedding | None
    facts: dict[str, Any]


def shards_digest(urls: list[str]) -> str:
    """Content hash of local shard files (names and bytes); remote URLs count by name."""
    h = hashlib.sha256()
    for url in sorted(urls):
        h.update(url.encode())
        path = Path(url)
        if path.is_file():
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


def cache_key(urls: list[str], sample_rate: int, phone_cfg: PhoneRecognizerConfig, speaker_cfg: SpeakerEmbeddingConfig,
              max_utterances: int) -> str:
    payload = {"shards": shards_digest(urls), "sample_rate": sample_rate, "phones": dataclasses.asdict(phone_cfg),
               "speaker": dataclasses.asdict(speaker_cfg), "max_utterances": max_utterances, "version": EVAL_MODELS_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def load_or_train(train_shards: str, sample_rate: int, phone_cfg: PhoneRecognizerConfig,
                  speaker_cfg: SpeakerEmbeddingConfig, cache_dir: str | Path, max_utterances: int = 4000,
                  log: Callable[[str], None] = print) -> EvalModels:
    """The cached models for ``train_shards``, trained once (under a file lock, renamed into place when complete)."""
    from soundstage.data.shards import expand_shards

    urls = expand_shards(train_shards)
    root = Path(os.path.expanduser(str(cache_dir)))
    final = root / f"eval-models-{sample_rate}hz-{cache_key(urls, sample_rate, phone_cfg, speaker_cfg, max_utterances)}"
    if not (final / "facts.json").is_file():
        build_dir_once(final, "facts.json",
                       lambda tmp: _train_into(tmp, train_shards, sample_rate, phone_cfg, speaker_cfg, max_utterances, log))
        log(f"[eval] measuring models cached in {final}")
    return _load(final)


def _train_into(out: Path, train_shards: str, sample_rate: int, phone_cfg: PhoneRecognizerConfig,
                speaker_cfg: SpeakerEmbeddingConfig, max_utterances: int, log: Callable[[str], None]) -> None:
    from safetensors.torch import save_file

    from .phone_recognizer import phone_sequence
    from .phone_training import train_phone_recognizer
    from .speaker_training import train_speaker_embedding
    from soundstage.data.utterances import read_utterances

    utts: list[Utterance] = read_utterances(train_shards, sample_rate, max_utterances)
    facts: dict[str, Any] = {"train_shards": train_shards, "sample_rate": sample_rate}
    if sum(1 for u in utts if phone_sequence(u.phonemes)) >= 4:
        log(f"[eval] training the phone recognizer on {len(utts)} training utterances ({phone_cfg.max_steps} steps)")
        model, facts["phones"] = train_phone_recognizer(utts, sample_rate, phone_cfg, log_dir=str(out / "tb_phones"))
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "phones.safetensors"))
        (out / "phones.json").write_text(json.dumps({"config": dataclasses.asdict(phone_cfg), "phones": model.phones}))
    if len({u.voice for u in utts if u.voice}) >= 2:
        log(f"[eval] training the speaker model on {len({u.voice for u in utts if u.voice})} training voices "
            f"({speaker_cfg.max_steps} steps)")
        spk, facts["speaker"] = train_speaker_embedding(utts, sample_rate, speaker_cfg, log_dir=str(out / "tb_speaker"))
        save_file({k: v.contiguous() for k, v in spk.state_dict().items()}, str(out / "speaker.safetensors"))
        (out / "speaker.json").write_text(json.dumps({"config": dataclasses.asdict(speaker_cfg)}))
    (out / "facts.json").write_text(json.dumps(facts, indent=2) + "\n")


def undertrained(facts: dict[str, Any], phone_cfg: PhoneRecognizerConfig, speaker_cfg: SpeakerEmbeddingConfig) -> list[str]:
    """A note for each cached measuring model that its ``max_minutes`` guard stopped short of its steps
    (a busy machine): its figures are on another scale than a fully trained model's."""
    notes = []
    for key, cfg, name in (("phones", phone_cfg, "phone recognizer"), ("speaker", speaker_cfg, "speaker model")):
        steps = (facts.get(key) or {}).get("steps")
        if steps is not None and steps < cfg.max_steps:
            notes.append(f"the {name} stopped at {steps} of {cfg.max_steps} steps (its {cfg.max_minutes:g}-minute guard): "
                         f"its figures are not comparable with a fully trained one's; delete {facts.get('cache_dir')} "
                         "to train it again on a quieter machine")
    return notes


def _load(path: Path) -> EvalModels:
    from safetensors.torch import load_file

    facts = json.loads((path / "facts.json").read_text())
    sr = int(facts["sample_rate"])
    phones = speaker = None
    if (path / "phones.json").is_file():
        meta = json.loads((path / "phones.json").read_text())
        phones = PhoneRecognizer(meta["phones"], sr, PhoneRecognizerConfig(**meta["config"]))
        phones.load_state_dict(load_file(str(path / "phones.safetensors")), strict=True)
    if (path / "speaker.json").is_file():
        meta = json.loads((path / "speaker.json").read_text())
        speaker = SpeakerEmbedding(sr, SpeakerEmbeddingConfig(**meta["config"]))
        speaker.load_state_dict(load_file(str(path / "speaker.safetensors")), strict=True)
    facts["cache_dir"] = str(path)
    return EvalModels(phones.eval() if phones else None, speaker.eval() if speaker else None, facts)

