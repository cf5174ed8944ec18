"""``soundstage export RUN_DIR OUT_DIR``: one self-contained bundle for generation.

The bundle holds every finished stage's safetensors model, the resolved recipe, ``bundle.json``
(which model plays which generation role) and a model card with the run's figures. It is
written into a temp folder and renamed into place, so a failed export leaves nothing half-done.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from soundstage.checkpoint import read_stage_metadata, write_json_atomic
from soundstage.errors import SoundstageError
from .evaluation.report import flatten
from .pipeline import BUNDLE_FILE, all_roles

EVAL_FILE = Path("eval") / "eval.json"


def export_bundle(run_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write the bundle of ``run_dir`` into ``out_dir``; returns ``out_dir``."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SoundstageError(f"{out_dir} exists and is not a directory; give a folder for the bundle")
    if out_dir.resolve() == run_dir.resolve() or run_dir.resolve() in out_dir.resolve().parents:
        raise SoundstageError(f"{out_dir} is inside the run directory {run_dir}; give a folder outside it")
    roles = all_roles(run_dir)  # every finished acoustic generator: `generate --acoustic` picks one
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise SoundstageError(f"{out_dir} exists and is not empty (pass --overwrite to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        stages = _copy_models(run_dir, tmp)
        shutil.copy2(run_dir / "recipe.yaml", tmp / "recipe.yaml")
        figures = json.loads((run_dir / EVAL_FILE).read_text()) if (run_dir / EVAL_FILE).is_file() else {}
        manifest = {
            "format": 1,
            "source_run": str(run_dir.resolve()),
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "recipe": "recipe.yaml",
            "roles": {role: {"stage": stage, **stages[stage]} for role, stage in roles.items()},
            "stages": stages,
        }
        write_json_atomic(tmp / BUNDLE_FILE, manifest)
        (tmp / "README.md").write_text(model_card(run_dir, manifest, figures))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _copy_models(run_dir: Path, dest: Path) -> dict[str, dict[str, Any]]:
    stages: dict[str, dict[str, Any]] = {}
    for done_file in sorted(run_dir.glob("*/done.json")):
        done = json.loads(done_file.read_text())
        if not done.get("checkpoint"):
            continue
        src = (done_file.parent / done["checkpoint"]).resolve()
        meta = read_stage_metadata(src)  # refuses anything that is not a soundstage safetensors file
        name = done_file.parent.name
        shutil.copy2(src, dest / f"{name}.safetensors")
        stages[name] = {"file": f"{name}.safetensors", "plugin": meta["plugin"], "bytes": src.stat().st_size}
    return stages


def model_card(run_dir: Path, manifest: dict[str, Any], figures: dict[str, Any]) -> str:
    """A README for the bundle: what is inside, how it was trained, its evaluation figures, how to use it."""
    from omegaconf import OmegaConf

    recipe = OmegaConf.load(run_dir / "recipe.yaml")
    lines = [
        f"# {recipe.name} (soundstage bundle)",
        "",
        str(recipe.get("description") or ""),
        "",
        f"Exported {manifest['exported_at']} from `{manifest['source_run']}`.",
        "",
        "| stage | plugin | role | size |",
        "|---|---|---|---|",
    ]
    role_of = {v["stage"]: k for k, v in manifest["roles"].items()}
    for name, info in manifest["stages"].items():
        lines.append(f"| {name} | {info['plugin']} | {role_of.get(name, '-')} | {info['bytes'] / 1e6:.1f} MB |")
    lines += ["", "## Evaluation", ""]
    if figures:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in flatten(figures).items() if isinstance(v, (int, float, str, bool))]
    else:
        lines.append("No evaluation was run before export (`soundstage eval RUN_DIR` writes one).")
    lines += [
        "",
        "## Use",
        "",
        "```bash",
        "soundstage generate THIS_DIR --prompt prompt.wav --seconds 4 --out continuation.wav",
        "soundstage generate THIS_DIR --unconditional --seconds 4 --out sample.wav",
        "```",
        "",
        "```python",
        "from soundstage import Pipeline",
        "pipe = Pipeline.load('THIS_DIR')",
        "wave = pipe.continue_audio(prompt_wave, seconds=4.0, sample_rate=16000)",
        "```",
        "",
        "Weights are safetensors files (no pickles); `recipe.yaml` is the resolved training recipe.",
        "",
    ]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
