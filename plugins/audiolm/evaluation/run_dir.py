"""What evaluation reads from a run directory: the resolved recipe, stage roles, models and data."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from soundstage.errors import SoundstageError
from soundstage.plugins.audiolm.pipeline import ROLES, find_roles
from soundstage.stage import Stage

LM_ROLES = ("semantic_lm", "coarse_lm", "fine_lm", "soundstorm")  # the token-model roles a run may have


@dataclass
class RunDir:
    """A finished run directory: ``recipe.yaml`` plus one folder per stage with ``done.json``."""

    path: Path
    recipe: dict[str, Any]
    done: dict[str, dict[str, Any]]  # stage name -> its done marker
    roles: dict[str, str]  # role -> stage name
    device: str = "cpu"  # where models are loaded
    _models: dict[str, Stage] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, path: str | Path, device: str = "cpu", acoustic: str | None = None) -> "RunDir":
        """``acoustic``: the acoustic generator to evaluate (``coarse_fine`` or ``soundstorm``) when the run has both."""
        path = Path(path)
        if not (path / "recipe.yaml").is_file():
            raise SoundstageError(f"{path}: not a run directory (no recipe.yaml)")
        recipe = OmegaConf.to_container(OmegaConf.load(path / "recipe.yaml"), resolve=True)
        done = {}
        for name in recipe.get("stages", {}):
            marker = path / name / "done.json"
            if marker.is_file():
                done[name] = json.loads(marker.read_text())
        return cls(path, recipe, done, _roles(path, recipe, done, acoustic), device)

    @property
    def sample_rate(self) -> int:
        return int(self.recipe.get("data", {}).get("sample_rate", 16000))

    def model(self, role: str) -> Stage:
        """The exported model of a role, loaded once onto ``device`` (eval mode)."""
        if role not in self._models:
            self._models[role] = Stage.load_pretrained(self.model_file(role)).to(self.device).eval()
        return self._models[role]

    def model_file(self, role: str) -> Path:
        """The exported model file of a role."""
        stage = self.roles[role]
        ckpt = self.done[stage].get("checkpoint")
        if not ckpt:
            raise SoundstageError(f"{self.path / stage}: stage {stage!r} has no exported model")
        return Path(ckpt) if Path(ckpt).is_absolute() else self.path / stage / ckpt

    def outputs(self, stage: str) -> dict[str, Any]:
        """A stage's done-marker outputs, ``./relative`` paths made absolute."""
        out = {}
        for key, value in self.done[stage].get("outputs", {}).items():
            if isinstance(value, str) and value.startswith("./"):
                value = str(self.path / stage / value[2:])
            out[key] = value
        return out

    def val_tokens(self, role: str) -> str | None:
        """The validation token shards an LM stage trained beside (its ``tokens`` upstream)."""
        return self._tokens(role, "val_tokens")

    def train_tokens(self, role: str) -> str | None:
        """The training token shards of an LM stage (its ``tokens`` upstream)."""
        return self._tokens(role, "train_tokens")

    def _tokens(self, role: str, key: str) -> str | None:
        needs = self.recipe["stages"][self.roles[role]].get("needs", [])
        for name in needs:
            if "tokens" in self.done.get(name, {}).get("produces", []):
                return self.outputs(name).get(key)
        return None

    def audio_shards(self) -> tuple[str | None, str | None]:
        """(train, val) audio shard specs of the recipe's data section (the embedded corpus is built if needed)."""
        from soundstage.config import build_config
        from soundstage.recipe_schema import DataConfig

        data = build_config(DataConfig, self.recipe.get("data", {}), where="data")
        if data.train_shards:
            return data.train_shards, data.val_shards
        from soundstage.data.corpus import prepare_corpus

        return prepare_corpus(data, progress=False)


def _roles(path: Path, recipe: dict[str, Any], done: dict[str, dict[str, Any]], acoustic: str | None) -> dict[str, str]:
    """Role -> stage via ``inference.find_roles``; LM stages that declare no product are matched by plugin."""
    try:
        return find_roles(path, acoustic)
    except SoundstageError:
        if acoustic not in (None, "coarse_fine"):
            raise
    # Fallback: the LM plugins' own names (an LM stage's done marker may list no products).
    by_plugin = {role: [n for n, d in done.items() if d.get("plugin") == role] for role in ROLES if role.endswith("_lm")}
    roles = {}
    for role in by_plugin:
        if not by_plugin[role]:
            raise SoundstageError(f"{path}: no finished {role} stage (finished: {sorted(done)})")
        roles[role] = by_plugin[role][-1]
    stages = recipe["stages"]
    token_stage = next((n for n in stages[roles["coarse_lm"]].get("needs", []) if "tokens" in done.get(n, {}).get("produces", [])), None)
    token_needs = stages[token_stage].get("needs", []) if token_stage else list(done)
    for role, stream in (("semantic_tokenizer", "semantic"), ("codec", "acoustic")):
        found = [n for n in token_needs if stream in done.get(n, {}).get("produces", [])]
        if not found:
            raise SoundstageError(f"{path}: no finished stage produces {stream!r}")
        roles[role] = found[-1]
    return {role: roles[role] for role in ROLES}


def module_device(module: Any) -> Any:
    """Device of a module's first parameter or buffer (k-means tokenizers hold buffers only)."""
    import torch

    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device("cpu")
