"""Branching a run: take another run directory's finished stages that this recipe would make the same.

``soundstage run RECIPE --run-dir NEW --reuse-from OLD`` trains only what differs. A done stage of
OLD is reused when NEW lacks it, every stage it needs is reused too (or is done in NEW with the very
same product), and the inputs NEW's recipe gives it (plugin, config, trainer, seed, data, upstream
products) hash to the fingerprint OLD recorded: the same check that decides whether a run may skip
its own done stage. Reused stages are hard-linked into NEW (copied across file systems), so OLD is
never written; a product's hash depends only on file content and paths inside the stage, so later
stages of NEW see the same upstream as OLD's did.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .checkpoint import write_json_atomic
from .errors import SoundstageError
from .fingerprint import differences, fingerprint, stage_inputs, without_added_defaults

if TYPE_CHECKING:
    from .runner import PipelineRunner


@dataclass
class ReuseDecision:
    """Whether stage ``name`` of OLD is taken, and why not when it is not."""

    name: str
    reused: bool
    reason: str = ""


def plan_reuse(runner: "PipelineRunner", source: "PipelineRunner", exclude: Sequence[str] = ()) -> list[ReuseDecision]:
    """For each stage of ``runner``'s recipe, in order: is ``source``'s done stage of that name reusable?
    Stages in ``exclude`` (``--restart``) are not, nor is anything that needs them."""
    if source.run_dir.resolve() == runner.run_dir.resolve():
        raise SoundstageError(f"--reuse-from {source.run_dir}: that is this run's own directory")
    if not source.run_dir.is_dir():
        raise SoundstageError(f"--reuse-from {source.run_dir}: no such run directory")
    products: dict[str, str] = {}  # product of every stage NEW will have done, reused or its own
    theirs: dict[str, str | None] = {}  # OLD's products, each hashed once

    def their_product(name: str) -> str | None:
        if name not in theirs:
            theirs[name] = source.product(name) if source.is_done(name) else None
        return theirs[name]

    decisions = []
    for name, plan in runner.recipe.stages.items():
        own = runner.is_done(name)
        if own:
            products[name] = runner.product(name)
        if own or name in exclude or not source.is_done(name):
            reason = "done here" if own else "--restart" if name in exclude else "not done there"
            decisions.append(ReuseDecision(name, False, reason))
            continue
        if runner.stage_dir(name).exists():  # an interrupted training here is resumed, never overwritten
            decisions.append(ReuseDecision(name, False, "an unfinished folder of it is here"))
            continue
        missing = [d for d in plan.needs if d not in products]
        if missing:
            decisions.append(ReuseDecision(name, False, f"needs {', '.join(map(repr, missing))}, which is not reused"))
            continue
        changed = [d for d in plan.needs if their_product(d) != products[d]]
        if changed:
            decisions.append(ReuseDecision(name, False, f"its {', '.join(map(repr, changed))} here differs from there"))
            continue
        done = source.done_marker(name)
        inputs = stage_inputs(runner.recipe, plan, {d: products[d] for d in plan.needs})
        inputs = without_added_defaults(done.get("inputs"), inputs, plan.config)
        if done.get("fingerprint") != fingerprint(inputs):
            reasons = differences(done.get("inputs"), inputs) or ["its recorded fingerprint does not match"]
            decisions.append(ReuseDecision(name, False, "; ".join(reasons)))
            continue
        products[name] = their_product(name)
        decisions.append(ReuseDecision(name, True))
    return decisions


def link_stage(source_dir: Path, target_dir: Path) -> None:
    """Put a finished stage's folder at ``target_dir``: hard links, or copies where links cannot be made."""
    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    from .runner import DONE_FILE  # the runner imports this module

    tmp = target_dir.with_name(target_dir.name + ".reuse.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source_dir, tmp, copy_function=link_or_copy, symlinks=True)
    _rekey_file_hashes(tmp / DONE_FILE, source_dir, target_dir)
    tmp.rename(target_dir)  # whole or not at all: an interrupted copy never looks done


def _rekey_file_hashes(done_file: Path, source_dir: Path, target_dir: Path) -> None:
    """The done marker's cached file hashes under the new folder's paths, so the branch does not re-read
    the files to hash them. write_json_atomic replaces the file, so the other run's linked marker is untouched."""
    done = json.loads(done_file.read_text())
    old, new = str(source_dir), str(target_dir)
    done["product_files"] = {(new + k[len(old):] if k.startswith(old + os.sep) else k): v
                             for k, v in (done.get("product_files") or {}).items()}
    write_json_atomic(done_file, done)
