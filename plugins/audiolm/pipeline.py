"""Inference over a finished run directory or an exported bundle: ``Pipeline.load(path)``.

The roles AudioLM generation needs are found from what each stage produces, following the
LM stages' ``needs`` to the exact tokenizers their token shards came from (a recipe may hold
several semantic tokenizers, e.g. k-means iterations 0 and 1). The acoustic generator is either
the coarse + fine LMs or SoundStorm; a run that trained both uses coarse + fine unless asked.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from soundstage.errors import SoundstageError
from soundstage.stage import Stage

ROLES = ("semantic_tokenizer", "codec", "semantic_lm", "coarse_lm", "fine_lm")  # the AR pipeline's roles
BASE_ROLES = ("semantic_tokenizer", "codec", "semantic_lm")
#: Acoustic generator -> the roles that make it up, in the order a run with several uses them by default.
ACOUSTIC_GENERATORS = {"coarse_fine": ("coarse_lm", "fine_lm"), "soundstorm": ("soundstorm",)}
BUNDLE_FILE = "bundle.json"
MIN_PROMPT_SECONDS = 0.5


def choose_acoustic(available: list[str], wanted: str | None, where: str) -> str:
    """The acoustic generator to use among ``available`` ones: ``wanted``, else the first."""
    if wanted is not None and wanted not in ACOUSTIC_GENERATORS:
        raise SoundstageError(f"unknown acoustic generator {wanted!r} (known: {', '.join(ACOUSTIC_GENERATORS)})")
    if not available:
        raise SoundstageError(f"{where}: no finished acoustic generator (coarse_lm + fine_lm, or soundstorm)")
    if wanted is None:
        return available[0]
    if wanted not in available:
        raise SoundstageError(f"{where}: no finished {wanted} acoustic generator (available: {', '.join(available)})")
    return wanted


def find_roles(run_dir: str | Path, acoustic: str | None = None) -> dict[str, str]:
    """Role -> stage name in a run directory, from the resolved recipe and the done markers.

    ``acoustic`` picks the acoustic generator (``coarse_fine`` or ``soundstorm``) when the run has both.
    """
    run_dir = Path(run_dir)
    recipe_file = run_dir / "recipe.yaml"
    if not recipe_file.is_file():
        raise SoundstageError(f"{run_dir}: not a run directory (no recipe.yaml) and not a bundle (no {BUNDLE_FILE})")
    stages = OmegaConf.to_container(OmegaConf.load(recipe_file).stages)  # type: ignore[arg-type]
    produces: dict[str, list[str]] = {}
    for name in stages:
        done = run_dir / name / "done.json"
        if done.is_file():
            produces[name] = json.loads(done.read_text()).get("produces", [])

    def producer(stream: str, among: list[str]) -> str:
        found = [s for s in among if stream in produces.get(s, [])]
        if not found:
            raise SoundstageError(f"{run_dir}: no finished stage produces {stream!r} (finished: {sorted(produces)})")
        return found[-1]

    kind = choose_acoustic(acoustic_generators(produces), acoustic, str(run_dir))
    roles = {role: producer(role, list(stages)) for role in ("semantic_lm", *ACOUSTIC_GENERATORS[kind])}
    tokens = producer("tokens", stages[roles[ACOUSTIC_GENERATORS[kind][0]]].get("needs", []))
    token_needs = stages[tokens].get("needs", [])
    roles["semantic_tokenizer"] = producer("semantic", token_needs)
    roles["codec"] = producer("acoustic", token_needs)
    return roles


def acoustic_generators(produces: dict[str, list[str]]) -> list[str]:
    """The acoustic generators whose every role some stage produces (``produces``: stage -> streams)."""
    made = {s for streams in produces.values() for s in streams}
    return [kind for kind, roles in ACOUSTIC_GENERATORS.items() if set(roles) <= made]


def all_roles(run_dir: str | Path) -> dict[str, str]:
    """Role -> stage for every finished acoustic generator of a run (what an export bundles)."""
    run_dir = Path(run_dir)
    produces = {p.parent.name: json.loads(p.read_text()).get("produces", []) for p in run_dir.glob("*/done.json")}
    roles: dict[str, str] = {}
    for kind in acoustic_generators(produces) or [None]:  # None: find_roles names what is missing
        roles = find_roles(run_dir, kind) | roles
    return roles


def model_files(path: str | Path, acoustic: str | None = None) -> dict[str, Path]:
    """Role -> exported model file, for a bundle or a run directory (``acoustic``: see ``find_roles``)."""
    path = Path(path)
    bundle = path / BUNDLE_FILE
    if bundle.is_file():
        roles = json.loads(bundle.read_text())["roles"]
        kind = choose_acoustic(acoustic_generators({r: [r] for r in roles}), acoustic, str(path))
        return {role: path / roles[role]["file"] for role in (*BASE_ROLES, *ACOUSTIC_GENERATORS[kind])}
    files = {}
    for role, stage in find_roles(path, acoustic).items():
        done = json.loads((path / stage / "done.json").read_text())
        if not done.get("checkpoint"):
            raise SoundstageError(f"{path / stage}: stage {stage!r} has no exported model")
        files[role] = (path / stage / done["checkpoint"]).resolve()
    return files


class Pipeline:
    """AudioLM inference: prompt continuation, unconditional generation, acoustic generation."""

    def __init__(self, models: dict[str, Stage], sampling: dict[str, dict[str, Any]] | None = None) -> None:
        from soundstage.plugins.lm.generation import AudioLMGenerator

        self.models = models
        self.generator = AudioLMGenerator(
            models["semantic_tokenizer"], models["semantic_lm"], models.get("coarse_lm"), models.get("fine_lm"),
            models["codec"], sampling=sampling, soundstorm=models.get("soundstorm"),
        )

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", sampling: dict[str, dict[str, Any]] | None = None,
             acoustic: str | None = None) -> "Pipeline":
        """Load every model generation needs from a run directory or an exported bundle.

        ``acoustic``: ``coarse_fine`` or ``soundstorm`` where the run trained both (default: coarse_fine).
        """
        models = {role: Stage.load_pretrained(file).to(device).eval() for role, file in model_files(path, acoustic).items()}
        return cls(models, sampling)

    @property
    def sample_rate(self) -> int:
        return self.generator.sample_rate

    def prepare_prompt(self, wave: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Mono, resampled, checked prompt [1, T]: stereo is downmixed, other rates resampled."""
        from soundstage.data.audio_io import BadAudio, check_wave, downmix, resample

        wave = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave, dtype=np.float32)
        if wave.ndim == 2 and wave.shape[0] <= 8 < wave.shape[1]:
            wave = wave.T  # [C, T] -> [T, C]
        wave = resample(downmix(wave), sample_rate, self.sample_rate)
        try:
            check_wave(wave, self.sample_rate, min_seconds=MIN_PROMPT_SECONDS)
        except BadAudio as exc:
            raise SoundstageError(f"prompt audio is unusable ({exc}); give at least {MIN_PROMPT_SECONDS}s of non-silent audio") from exc
        if np.abs(wave).max() < 1e-4:
            raise SoundstageError("prompt audio is silent (peak below -80 dBFS)")
        return torch.from_numpy(wave)[None].to(self._device)

    @property
    def _device(self) -> torch.device:
        return next(self.models["codec"].parameters()).device

    def continue_audio(self, wave: np.ndarray | torch.Tensor, seconds: float, sample_rate: int | None = None,
                       include_prompt: bool = True, seed: int | None = None) -> torch.Tensor:
        """Continue a prompt by ``seconds`` -> waveform [1, T] at ``self.sample_rate``."""
        prompt = self.prepare_prompt(wave, sample_rate or self.sample_rate)
        return self.generator.continue_audio(prompt, seconds, include_prompt=include_prompt, generator=self._rng(seed))

    def generate(self, seconds: float, batch: int = 1, seed: int | None = None) -> torch.Tensor:
        """Unconditional generation -> [batch, T]."""
        return self.generator.generate(seconds, batch=batch, generator=self._rng(seed))

    def from_semantic(self, ids: torch.Tensor, seed: int | None = None, prompt: torch.Tensor | None = None,
                      sample_rate: int | None = None) -> torch.Tensor:
        """Acoustic generation from given semantic ids [B, Ts] -> [B, T]; with ``prompt`` audio of the ids'
        first seconds ([B, Tp], any rate), the acoustic tokens continue the prompt's."""
        if prompt is not None:
            prompt = torch.cat([self.prepare_prompt(p, sample_rate or self.sample_rate) for p in prompt.reshape(-1, prompt.shape[-1])])
        return self.generator.from_semantic(ids.to(self._device), generator=self._rng(seed), prompt=prompt)

    def _rng(self, seed: int | None) -> torch.Generator | None:
        if seed is None:
            return None
        return torch.Generator(device=self._device).manual_seed(seed)
