"""``audiolm_samples``: the pipeline's last step, writing continuations and unconditional samples.

Held-out prompts come from the recipe's validation audio, so a run's samples show how the
models continue voices and pieces they were never trained on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import numpy as np

from soundstage.checkpoint import write_json_atomic
from soundstage.data.audio_io import write_wav
from soundstage.errors import SoundstageError
from soundstage.registry import register_stage
from soundstage.stage import Stage, StageConfig, StageContext

ROLE_STREAMS = {
    "semantic_tokenizer": "semantic",
    "codec": "acoustic",
    "semantic_lm": "semantic_lm",
    "coarse_lm": "coarse_lm",
    "fine_lm": "fine_lm",
    "soundstorm": "soundstorm",
}
ACOUSTIC_STREAMS = ("coarse_lm", "fine_lm", "soundstorm")  # needs: coarse_lm + fine_lm, or soundstorm


@dataclass
class StageSampling:
    """Sampling overrides for one LM (unset: the LM's own config)."""

    temperature: Optional[float] = None
    top_k: Optional[int] = None
    top_p: Optional[float] = None

    def as_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass
class SamplesConfig(StageConfig):
    """How many samples of which kind to write."""

    num_prompts: int = 2  # held-out utterances to continue
    prompt_seconds: float = 2.0
    continue_seconds: float = 3.0
    num_unconditional: int = 1
    unconditional_seconds: float = 3.0
    seed: int = 0
    device: str = "cpu"
    semantic: StageSampling = field(default_factory=StageSampling)
    coarse: StageSampling = field(default_factory=StageSampling)
    fine: StageSampling = field(default_factory=StageSampling)
    soundstorm: StageSampling = field(default_factory=StageSampling)


@register_stage("audiolm_samples")
class AudioLMSamplesStage(Stage):
    """Writes prompt/continuation and unconditional WAVs (plus samples.json) into its stage folder."""

    config_class = SamplesConfig
    consumes = ("audio", *ROLE_STREAMS.values())
    optional_consumes = ACOUSTIC_STREAMS
    trainable = False

    @classmethod
    def check_upstream(cls, config: StageConfig, upstream: dict[str, tuple[type[Stage], StageConfig]]) -> list[str]:
        made = {s for stage_class, _ in upstream.values() for s in stage_class.produces}
        if not ({"coarse_lm", "fine_lm"} <= made or "soundstorm" in made):
            return ["needs an acoustic generator: coarse_lm + fine_lm, or soundstorm"]
        return []

    def run(self, ctx: StageContext) -> dict[str, Any]:
        from soundstage.plugins.audiolm.pipeline import Pipeline

        cfg = self.config
        sampling = {"semantic": cfg.semantic.as_kwargs(), "coarse": cfg.coarse.as_kwargs(), "fine": cfg.fine.as_kwargs(),
                    "soundstorm": cfg.soundstorm.as_kwargs()}
        needed = {s for r in ctx.upstream.values() for s in r.produces}
        # With both generators among the needs, coarse + fine make the samples (as in the AudioLM paper).
        roles = {r: s for r, s in ROLE_STREAMS.items() if s in needed and not (s == "soundstorm" and "coarse_lm" in needed)}
        models = {role: ctx.load_upstream(stream).to(cfg.device).eval() for role, stream in roles.items()}
        pipe = Pipeline(models, sampling=sampling)
        sr = pipe.sample_rate
        written: list[dict[str, Any]] = []
        if cfg.num_prompts and not ctx.val_shards:
            raise SoundstageError(f"stage {ctx.name!r}: continuations need held-out audio (data.val_shards is empty)")
        prompts = _held_out_prompts(ctx.val_shards, sr, cfg.prompt_seconds) if cfg.num_prompts else iter(())
        for i, (key, prompt, meta) in zip(range(cfg.num_prompts), prompts):
            wave = pipe.continue_audio(prompt, cfg.continue_seconds, sample_rate=sr, seed=cfg.seed + i)[0]
            entry = {"kind": "continuation", "source_key": key, "prompt_seconds": len(prompt) / sr,
                     **{k: meta[k] for k in ("voice", "text") if k in meta}}
            entry["prompt"] = write_wav(ctx.stage_dir / f"prompt_{i:02d}.wav", prompt, sr).name
            entry["file"] = write_wav(ctx.stage_dir / f"continuation_{i:02d}.wav", wave.float().cpu().numpy(), sr).name
            entry["seconds"] = wave.shape[-1] / sr
            written.append(entry)
        if cfg.num_unconditional:
            waves = pipe.generate(cfg.unconditional_seconds, batch=cfg.num_unconditional, seed=cfg.seed)
            for i, wave in enumerate(waves):
                name = write_wav(ctx.stage_dir / f"unconditional_{i:02d}.wav", wave.float().cpu().numpy(), sr).name
                written.append({"kind": "unconditional", "file": name, "seconds": wave.shape[-1] / sr})
        write_json_atomic(ctx.stage_dir / "samples.json", {"sample_rate": sr, "samples": written})
        return {"samples": [f"./{w['file']}" for w in written], "sample_rate": sr}


def _held_out_prompts(val_shards: str, sample_rate: int, seconds: float) -> Iterator[tuple[str, np.ndarray, dict]]:
    """The first ``seconds`` of each held-out utterance at least that long, in shard order."""
    from soundstage.data.utterances import iter_utterances

    need = int(seconds * sample_rate)
    for u in iter_utterances(val_shards, sample_rate):
        if len(u.wave) >= need:
            yield u.key, u.wave[:need], u.meta
