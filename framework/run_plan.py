"""Before anything runs: what each stage of a run would do, and which done stages are stale.

``plan_run`` walks the recipe in order and gives every stage one action:

- ``skip``: done, and everything it was made from is unchanged;
- ``train`` / ``resume`` / ``run`` / ``adopt``: this invocation builds it (``--restart`` or not done yet);
- ``stale``: done, but made from something else (a changed config or trainer setting, another
  plugin version, or an upstream stage that changed or that this invocation rebuilds); refused;
- ``missing``: not done and not selected; ``remove``: forgotten by ``--restart`` but not selected;
- ``unused``: not selected and nothing selected needs it.

``soundstage run --dry-run`` prints this plan; a real run refuses up front, listing every stale stage.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from .errors import SoundstageError
from .fingerprint import differences, fingerprint, stage_inputs, without_added_defaults

if TYPE_CHECKING:
    from .runner import PipelineRunner

BUILDS = ("train", "resume", "run", "adopt")


@dataclass
class StageStatus:
    """What one stage would do in this invocation, and why."""

    name: str
    action: str
    reasons: list[str] = field(default_factory=list)

    def line(self) -> str:
        why = f"  ({'; '.join(self.reasons)})" if self.reasons else ""
        return f"{self.name:16s} {self.action:8s}{why}"


def plan_run(runner: "PipelineRunner", selected: Sequence[str], restart: Sequence[str]) -> dict[str, StageStatus]:
    """The action of every stage of ``runner``'s recipe for ``selected`` stages and ``--restart`` ones."""
    plans = runner.recipe.stages
    needed = _needed_by(plans, selected)
    out: dict[str, StageStatus] = {}
    for name, plan in plans.items():
        rebuilt = [d for d in plan.needs if out[d].action in BUILDS + ("remove",)]
        stale = [d for d in plan.needs if out[d].action == "stale"]
        gone = [d for d in plan.needs if out[d].action == "missing"]
        if name in restart:
            action = _build_action(runner, name, fresh=True) if name in selected else "remove"
            status = StageStatus(name, action, ["--restart"])
        elif not runner.is_done(name):
            action = _build_action(runner, name, fresh=False)
            if name not in selected:
                status = StageStatus(name, "missing" if name in needed else "unused")
            elif action == "resume" and rebuilt:
                status = StageStatus(name, "stale", [f"its interrupted training used {d!r}, which this run rebuilds"
                                                     for d in rebuilt])
            elif action == "resume" and stale:
                status = StageStatus(name, "stale", [f"needs {d!r}, which is stale" for d in stale])
            elif action == "resume" and not gone and (reasons := _resume_changes(runner, name)):
                status = StageStatus(name, "stale", [f"interrupted training: {r}" for r in reasons])
            else:
                status = StageStatus(name, action)
        elif rebuilt:
            verb = {"remove": "--restart removes"}
            status = StageStatus(name, "stale", [
                f"needs {d!r}, which this run {verb.get(out[d].action, 'rebuilds')}" for d in rebuilt
            ])
        elif stale:
            status = StageStatus(name, "stale", [f"needs {d!r}, which is stale" for d in stale])
        elif gone:  # an upstream stage deleted by hand: nothing left to compare with
            status = StageStatus(name, "skip", [f"made from {d!r}, which is no longer done; not rechecked" for d in gone])
        else:
            reasons = _changes(runner, name)
            status = StageStatus(name, "stale", reasons) if reasons else StageStatus(name, "skip")
        if status.action in ("stale", "skip") and name not in needed:  # reported, never refused
            status = StageStatus(name, "unused", [f"stale: {r}" for r in status.reasons] if status.action == "stale" else [])
        out[name] = status
    return out


def check_plan(runner: "PipelineRunner", statuses: dict[str, StageStatus]) -> None:
    """Refuse, in one line, a run that would reuse stale stages or build on stages that are not done."""
    stale = [s for s in statuses.values() if s.action == "stale"]
    if stale:
        listing = "; ".join(f"{s.name} ({', '.join(s.reasons)})" for s in stale)
        again = [s.name for s in statuses.values() if s.reasons == ["--restart"]] + [s.name for s in stale]
        raise SoundstageError(
            f"{len(stale)} stage(s) in {runner.run_dir} are stale: {listing}; retrain them with "
            f"--restart {','.join(n for n in runner.recipe.stages if n in again)}, or use another --run-dir"
        )
    for s in statuses.values():
        if s.action not in BUILDS:
            continue
        missing = [d for d in runner.recipe.stages[s.name].needs if statuses[d].action in ("missing", "remove")]
        if missing:
            raise SoundstageError(
                f"stage {s.name!r} needs {missing}, which are not done in {runner.run_dir}; "
                f"run them first or add them to --stages"
            )


def format_plan(statuses: dict[str, StageStatus]) -> str:
    """The dry-run table: one line per stage, in run order."""
    return "\n".join(s.line() for s in statuses.values())


def _build_action(runner: "PipelineRunner", name: str, fresh: bool) -> str:
    plan = runner.recipe.stages[name]
    if plan.checkpoint:
        return "adopt"
    if not plan.spec.trainable:
        return "run"
    return "resume" if not fresh and runner.has_resume_point(name) else "train"


def _changes(runner: "PipelineRunner", name: str) -> list[str]:
    """Why the done stage ``name`` no longer matches the recipe and its upstream stages ([] if it does)."""
    done = runner.done_marker(name)
    plan = runner.recipe.stages[name]
    inputs = stage_inputs(runner.recipe, plan, {d: runner.product(d) for d in plan.needs})
    if "inputs" in done:
        inputs = without_added_defaults(done["inputs"], inputs, plan.config)
        if done.get("fingerprint") == fingerprint(inputs):
            return []
    return differences(done.get("inputs"), inputs) or ["its recorded fingerprint does not match"]


def _resume_changes(runner: "PipelineRunner", name: str) -> list[str]:
    """Why an interrupted stage's checkpoints do not fit the recipe any more ([] if they do).

    Trainer keys are left out: raising ``max_steps`` or ``max_time`` to finish an interrupted run is
    what resuming is for (the done marker then records the final settings).
    """
    def without_trainer(inputs: dict | None) -> dict | None:
        return None if inputs is None else {k: v for k, v in inputs.items() if k != "trainer"}

    recorded = runner.started_inputs(name)
    current = without_added_defaults(recorded, runner.inputs(name), runner.recipe.stages[name].config)
    return differences(without_trainer(recorded), without_trainer(current), what="its last.ckpt")


def _needed_by(plans: dict, selected: Sequence[str]) -> set[str]:
    """``selected`` and every stage they need, directly or not."""
    seen: set[str] = set()
    stack = list(selected)
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(plans[name].needs)
    return seen
