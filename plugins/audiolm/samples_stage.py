"""``audiolm_samples``: the pipeline's last step, writing continuations and unconditional samples.

Held-out prompts come from the recipe's validation audio, so a run's samples show how the
models continue voices and pieces they were never trained on.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from soundstage.checkpoint import write_json_atomic
from soundstage.data.audio_io import write_wav
from soundstage.errors import SoundstageError
from soundstage.stage import Stage, StageContext

from .samples_spec import ROLE_STREAMS, AudioLMSamplesSpec


class AudioLMSamplesStage(AudioLMSamplesSpec, Stage):
    """Writes prompt/continuation and unconditional WAVs (plus samples.json) into its stage folder."""

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
