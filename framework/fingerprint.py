"""What a finished stage was made from (its *inputs*), hashed into its fingerprint.

A done stage is reused only while its fingerprint is unchanged. The inputs are the plugin and
the version of the package that provides it, the resolved config, the recipe seed, the trainer
settings that change what is learned, the dataset (for stages that read audio) and the *product*
of every needed stage: a hash of that stage's own fingerprint and of the content of the files it
handed on (its model file, its token shards and their index). Retraining or changing anything
upstream therefore changes the fingerprint of every stage downstream of it.

Trainer keys left out (they do not change what a stage learns): logging, checkpoint cadence,
progress display, CPU threads, validation cadence, and hardware placement (accelerator, devices,
nodes, strategy, cudnn flags), because a run directory is routinely continued on other hardware
(a codec trained on a workstation, the LMs on a cluster). Data keys left out: loader settings
and the corpus cache location.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import config_to_dict

if TYPE_CHECKING:
    from .recipe import Recipe, StagePlan

FINGERPRINT_VERSION = 2  # done markers without it come from before inputs were recorded
NOT_RESULT_TRAINER_KEYS = frozenset({
    "log_every_n_steps", "checkpoint_every_n_steps", "enable_progress_bar", "num_threads",
    "val_check_interval", "check_val_every_n_epoch", "limit_val_batches", "num_sanity_val_steps",
    "accelerator", "devices", "num_nodes", "strategy", "deterministic", "benchmark",
})
NOT_RESULT_DATA_KEYS = frozenset({"num_workers", "prefetch_factor", "pin_memory", "cache_dir"})
_CHUNK = 1 << 20


@functools.lru_cache(maxsize=None)
def plugin_version(module: str) -> str:
    """``dist==version`` of the installed package that provides ``module`` ("unpackaged" if none)."""
    top = module.split(".")[0]
    dists = metadata.packages_distributions().get(top, [])
    if not dists:
        return "unpackaged"
    return ",".join(f"{d}=={metadata.version(d)}" for d in sorted(set(dists)))


def stage_inputs(recipe: "Recipe", plan: "StagePlan", upstream_products: dict[str, str]) -> dict[str, Any]:
    """Everything ``plan`` is made from, as plain data (recorded in its done marker)."""
    trainer = config_to_dict(plan.trainer)
    inputs: dict[str, Any] = {
        "plugin": plan.plugin,
        "plugin_version": plugin_version(plan.spec.__module__),
        "config": config_to_dict(plan.config),
        "seed": recipe.seed,
        "trainer": {k: v for k, v in trainer.items() if k not in NOT_RESULT_TRAINER_KEYS},
        "checkpoint": plan.checkpoint,
        "upstream": dict(upstream_products),
    }
    if "audio" in plan.spec.consumes and not plan.checkpoint:
        inputs["data"] = data_inputs(recipe)
    return inputs


def without_added_defaults(recorded: dict[str, Any] | None, inputs: dict[str, Any], config: Any) -> dict[str, Any]:
    """``inputs`` less the config keys that ``recorded`` lacks and that hold their default value: fields a
    newer soundstage added (defaults keep the old behaviour), so upgrading does not make finished stages stale."""
    old = (recorded or {}).get("config")
    if not isinstance(old, dict) or not isinstance(inputs.get("config"), dict):
        return inputs
    try:
        defaults = config_to_dict(type(config)())
    except Exception:  # a config class without defaults for every field: compare as recorded
        return inputs

    def strip(old_part: dict, new_part: dict, default_part: Any) -> dict:
        out = {}
        for key, value in new_part.items():
            default = default_part.get(key, _MISSING) if isinstance(default_part, dict) else _MISSING
            if key not in old_part:
                if value == default:
                    continue
            elif isinstance(value, dict) and isinstance(old_part[key], dict):
                value = strip(old_part[key], value, default)
            out[key] = value
        return out

    return {**inputs, "config": strip(old, inputs["config"], defaults)}


_MISSING = object()


def data_inputs(recipe: "Recipe") -> dict[str, Any]:
    """The dataset keys that change the audio a stage sees, and the sizes of local user shards."""
    data = {k: v for k, v in config_to_dict(recipe.data).items() if k not in NOT_RESULT_DATA_KEYS}
    if data.get("engine") == "espeak" or recipe.data.train_shards or recipe.data.corpus != "speech":
        data.pop("engine", None)  # added later: only a non-default reader of the speech corpus is an input
    if recipe.data.train_shards:
        data["shard_sizes"] = _shard_sizes(recipe.data.train_shards, recipe.data.val_shards)
    return data


def _shard_sizes(*specs: str | None) -> str:
    """A digest of every local shard's name and size (a done marker stays small with 10,000 shards)."""
    from soundstage.data.shards import expand_shards, is_remote

    sizes: dict[str, int] = {}
    for spec in specs:
        try:
            urls = expand_shards(spec) if spec else []
        except FileNotFoundError as exc:
            return f"unavailable: {exc}"
        sizes.update({u: os.path.getsize(u) for u in urls if not is_remote(u)})
    return f"{len(sizes)} shards, sha256 {_digest(json.dumps(sizes, sort_keys=True))[:16]}"


def fingerprint(inputs: dict[str, Any]) -> str:
    """A short hash of a stage's inputs."""
    return _digest(json.dumps(inputs, sort_keys=True, default=str))[:16]


# --- products: what a stage hands on ---------------------------------------------------------------
def product_files(stage_dir: Path, checkpoint: str | None, outputs: dict[str, Any]) -> list[Path]:
    """The files a finished stage hands to later stages: its model and every file its outputs name."""
    roots: list[Path] = []
    if checkpoint:
        roots.append(_resolve(checkpoint, stage_dir))
    for value in outputs.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and (item.startswith("./") or os.path.isabs(item)):
                roots.append(_resolve(item, stage_dir))
    files: list[Path] = []
    for root in roots:
        if root.is_dir():
            files += sorted(p for p in root.rglob("*") if p.is_file() and not _scratch(p))
        else:
            files.append(root)  # a missing file stays listed: its absence is a change
    return files


def file_hashes(files: list[Path], known: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """``{path: {sha256, size, mtime_ns}}``; a file whose size and mtime match ``known`` is not re-read."""
    known = known or {}
    out: dict[str, dict[str, Any]] = {}
    for path in files:
        key = str(path)
        try:
            st = path.stat()
        except OSError:
            out[key] = {"sha256": "missing"}
            continue
        old = known.get(key, {})
        if old.get("size") == st.st_size and old.get("mtime_ns") == st.st_mtime_ns and "sha256" in old:
            out[key] = old
            continue
        out[key] = {"sha256": file_digest(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return out


def product_hash(stage_fingerprint: str, hashes: dict[str, dict[str, Any]], stage_dir: Path) -> str:
    """One hash for a stage's product: its fingerprint plus the content of its files (paths made relative)."""
    content = {_relative(Path(p), stage_dir): h["sha256"] for p, h in hashes.items()}
    return _digest(json.dumps({"fingerprint": stage_fingerprint, "files": content}, sort_keys=True))[:16]


# --- explaining a change ----------------------------------------------------------------------------
def differences(old: dict[str, Any] | None, new: dict[str, Any], what: str = "its done marker") -> list[str]:
    """Why ``old`` inputs are not ``new`` ones, as short phrases (empty when they are the same)."""
    if not old:
        return [f"{what} predates recorded inputs (made by an older soundstage)"]
    reasons = []
    if old.get("plugin") != new["plugin"]:
        reasons.append(f"plugin {old.get('plugin')} -> {new['plugin']}")
    elif old.get("plugin_version") != new["plugin_version"]:
        reasons.append(f"plugin version {old.get('plugin_version')} -> {new['plugin_version']}")
    for section in ("config", "trainer", "data"):
        if section not in old and section not in new:
            continue
        keys = _changed_keys(old.get(section) or {}, new.get(section) or {})
        if keys:
            reasons.append(f"{section} keys changed: {', '.join(keys)}")
    if old.get("seed") != new["seed"]:
        reasons.append(f"seed {old.get('seed')} -> {new['seed']}")
    if old.get("checkpoint") != new["checkpoint"]:
        reasons.append("checkpoint path changed")
    old_up, new_up = old.get("upstream") or {}, new["upstream"]
    for name in sorted(set(old_up) | set(new_up)):
        if old_up.get(name) != new_up.get(name):
            reasons.append(f"the output of {name!r} it was made from changed")
    return reasons


def _changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _resolve(value: str, stage_dir: Path) -> Path:
    if value.startswith("./"):
        return stage_dir / value[2:]
    return Path(value) if os.path.isabs(value) else stage_dir / value


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def _scratch(path: Path) -> bool:
    return path.name.startswith(".") or path.name.endswith(".tmp")


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
