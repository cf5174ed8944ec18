"""The pipeline runner: executes a recipe's stages in dependency order inside a run directory.

``runs/<recipe>/<stage>/`` holds a stage's TensorBoard logs (``tb/``), Lightning checkpoints
(``checkpoints/last.ckpt``), its exported model (``model.safetensors``), the resolved recipe
and, once complete, ``done.json`` with what it was made from (``fingerprint``). A done stage is
skipped while nothing it was made from changed; an interrupted one resumes from ``last.ckpt``; a
done stage that is stale is an error rather than a silent reuse (``run_plan`` decides, before
anything runs). The run holds ``run.lock`` for its whole life, so two runs never share a directory.
"""
from __future__ import annotations

import json
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from .checkpoint import atomic_path, check_resume_checkpoint, read_stage_metadata, write_json_atomic
from .config import config_to_dict
from .distributed import barrier, check_replicas_in_sync, is_global_zero, is_sharded, launched_with_several_processes
from .errors import CheckpointError, PreemptedError, SoundstageError
from .fingerprint import FINGERPRINT_VERSION, file_hashes, fingerprint, product_files, product_hash, stage_inputs
from .memory import check_memory
from .output_paths import absolute_outputs, portable_outputs, relative_path
from .recipe import Recipe, StagePlan
from .run_lock import RunDirLock, busy_error, lock_holder
from .run_plan import BUILDS, StageStatus, check_plan, plan_run
from .run_reuse import link_stage, plan_reuse
from .stage import Stage, StageContext, StageRecord

DONE_FILE = "done.json"
STARTED_FILE = "started.json"  # the inputs of a stage's training, written before its first checkpoint
MODEL_FILE = "model.safetensors"


@dataclass
class StageResult:
    """How one stage went in this invocation (for the closing summary)."""

    name: str
    status: str  # trained | resumed | skipped | reused | reused-checkpoint | ran
    seconds: float = 0.0


def default_run_dir(recipe: Recipe) -> Path:
    """``<run_root>/<recipe name>``."""
    return Path(recipe.run_root).expanduser() / recipe.name


class PipelineRunner:
    """Trains a validated recipe, stage by stage, into a run directory."""

    def __init__(self, recipe: Recipe, run_dir: str | Path | None = None, log: Callable[[str], None] = print) -> None:
        self.recipe = recipe
        self.run_dir = Path(run_dir) if run_dir else default_run_dir(recipe)
        self.log = log if is_global_zero() else (lambda _msg: None)
        self._shards: tuple[str | None, str | None] | None = None
        self.statuses: dict[str, StageStatus] = {}  # the plan of the last run() call
        self._borrowed: dict[str, PipelineRunner] = {}  # stages planned for reuse, still in the other run's folder

    # --- public -----------------------------------------------------------------------------
    def run(
        self, stages: Sequence[str] | None = None, restart: Sequence[str] = (), dry_run: bool = False,
        reuse_from: str | Path | None = None,
    ) -> list[StageResult]:
        """Run ``stages`` (default: all) in order; stages they need must be done or selected too.

        Nothing runs when a done stage that is used is stale (see ``run_plan``); the error lists them.
        With ``dry_run`` only the plan is made (``self.statuses``) and nothing is written.
        ``reuse_from``: another run directory whose finished stages this recipe would make the same
        are linked in first instead of trained (``run_reuse``).
        """
        plans = self.recipe.stages
        for name in list(stages or []) + list(restart):
            if name not in plans:
                raise SoundstageError(f"unknown stage {name!r} in this recipe (stages: {', '.join(plans)})")
        selected = list(plans) if not stages else [n for n in plans if n in set(stages)]
        if restart and launched_with_several_processes():
            raise SoundstageError(
                "--restart cannot be used in a multi-process launch (other ranks could read the stage before it is "
                f"removed); delete {self.run_dir}/<stage> first, or use --restart in a single-process command"
            )
        holder = lock_holder(self.run_dir) if is_global_zero() and not dry_run else None
        if holder:  # said first: what the holder is doing to the directory makes any plan meaningless
            raise busy_error(self.run_dir, holder)
        from soundstage.data.remote import configure as configure_remote

        configure_remote(self.recipe.data.remote_timeout_s, self.recipe.data.remote_retries)
        source = PipelineRunner(self.recipe, reuse_from, log=self.log) if reuse_from else None
        self.statuses = self._plan(selected, restart, source)
        if dry_run:
            return []
        check_plan(self, self.statuses)  # before the lock: a refused run leaves nothing behind
        check_memory(self.recipe, [n for n, s in self.statuses.items() if s.action in BUILDS])
        with RunDirLock(self.run_dir) if is_global_zero() else nullcontext() as lock:
            if lock is not None:
                if lock.previous.get("pid"):
                    self.log(f"[run] lock of PID {lock.previous['pid']} (no longer running) taken over")
                # again under the lock: a run that held the directory until a moment ago may have changed it
                self.statuses = self._plan(selected, restart, source)
                check_plan(self, self.statuses)
                self._link_borrowed()
                for status in self.statuses.values():
                    if status.action == "unused" and status.reasons:
                        self.log(f"[{status.name}] not used by this run; {'; '.join(status.reasons)}")
                with atomic_path(self.run_dir / "recipe.yaml") as tmp:
                    tmp.write_text(self.recipe.to_yaml())
                for name in restart:
                    self._restart(name)
            return [self._run_stage(plans[name]) for name in selected]

    def stage_dir(self, name: str) -> Path:
        """Where stage ``name``'s folder is: this run's, or the other run's while it is only planned for reuse."""
        borrowed = self._borrowed.get(name)
        return borrowed.stage_dir(name) if borrowed else self.run_dir / name

    def is_done(self, name: str) -> bool:
        return (self.stage_dir(name) / DONE_FILE).is_file()

    def record(self, name: str) -> StageRecord:
        """The done marker of a finished stage, as a StageRecord with absolute paths."""
        stage_dir = self.stage_dir(name)
        done = self.done_marker(name)
        ckpt = done.get("checkpoint")
        return StageRecord(
            name=name,
            plugin=done["plugin"],
            stage_dir=stage_dir,
            produces=tuple(done.get("produces", ())),
            checkpoint=(stage_dir / ckpt).resolve() if ckpt else None,
            outputs=absolute_outputs(done.get("outputs", {}), stage_dir),
        )

    def done_marker(self, name: str) -> dict[str, Any]:
        """The parsed ``done.json`` of a finished stage."""
        path = self.stage_dir(name) / DONE_FILE
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SoundstageError(f"{path}: cannot read done marker ({exc}); --restart {name} to train it again") from exc

    def has_resume_point(self, name: str) -> bool:
        return (self.stage_dir(name) / "checkpoints" / "last.ckpt").is_file()

    def started_inputs(self, name: str) -> dict[str, Any] | None:
        """The inputs an interrupted stage's training started from (None when not recorded)."""
        try:
            return json.loads((self.stage_dir(name) / STARTED_FILE).read_text()).get("inputs")
        except (OSError, ValueError):
            return None

    def product(self, name: str) -> str:
        """Hash of what the done stage ``name`` hands on: its fingerprint and its files' content."""
        done = self.done_marker(name)
        stage_dir = self.stage_dir(name)
        files = product_files(stage_dir, done.get("checkpoint"), done.get("outputs", {}))
        return product_hash(done.get("fingerprint", ""), file_hashes(files, done.get("product_files")), stage_dir)

    def inputs(self, name: str) -> dict[str, Any]:
        """What stage ``name`` is made from now (its needs must be done)."""
        plan = self.recipe.stages[name]
        return stage_inputs(self.recipe, plan, {d: self.product(d) for d in plan.needs})

    # --- internals ----------------------------------------------------------------------------
    def _plan(self, selected: Sequence[str], restart: Sequence[str], source: "PipelineRunner | None") -> dict[str, StageStatus]:
        """``plan_run``'s statuses, with the stages ``source`` can lend seen as done here and marked ``reuse``."""
        self._borrowed = {}
        if source is None:
            return plan_run(self, selected, restart)
        decisions = plan_reuse(self, source, exclude=restart)
        self._borrowed = {d.name: source for d in decisions if d.reused}
        statuses = plan_run(self, selected, restart)
        for d in decisions:
            status = statuses[d.name]
            if d.reused and status.action == "skip":
                statuses[d.name] = StageStatus(d.name, "reuse", [f"from {source.run_dir}"])
            elif not d.reused and status.action in BUILDS and d.reason != "not done there":
                status.reasons.append(f"not reused: {d.reason}")
        return statuses

    def _link_borrowed(self) -> None:
        """Hard-link the stages planned for reuse into this run directory (global rank 0, under the run lock)."""
        for name, source in list(self._borrowed.items()):
            if self.statuses[name].action != "reuse":
                continue
            link_stage(source.stage_dir(name), self.run_dir / name)
            del self._borrowed[name]
            self.log(f"[{name}] reused from {source.run_dir / name}")

    def _run_stage(self, plan: StagePlan) -> StageResult:
        stage_dir = self.stage_dir(plan.name)
        status = self.statuses[plan.name]
        if status.action == "reuse":
            return StageResult(plan.name, "reused")
        if status.action not in BUILDS:
            self.log(f"[{plan.name}] done already ({stage_dir}); skipping")
            return StageResult(plan.name, "skipped")
        inputs = self.inputs(plan.name)
        start = time.monotonic()
        L.seed_everything(self.recipe.seed, workers=True, verbose=False)
        if plan.trainer.num_threads:
            import torch

            torch.set_num_threads(plan.trainer.num_threads)
        if plan.checkpoint:
            status, checkpoint, outputs = "reused-checkpoint", self._adopt_checkpoint(plan), {}
        else:
            ctx = self._context(plan)
            stage = plan.stage_class(plan.config)
            if plan.spec.trainable:
                if is_global_zero():  # what the checkpoints about to be written are made from (resume checks it)
                    write_json_atomic(stage_dir / STARTED_FILE, {"fingerprint_version": FINGERPRINT_VERSION, "inputs": inputs})
                status, outputs, state = self._fit(plan, stage, ctx)
                checkpoint = stage_dir / MODEL_FILE
                if is_global_zero():
                    stage.save_pretrained(checkpoint, state_dict=state)
            else:
                self.log(f"[{plan.name}] running {plan.plugin}")
                status, outputs, checkpoint = "ran", stage.run(ctx) or {}, None
                if plan.spec.exports_model:
                    checkpoint = stage_dir / MODEL_FILE
                    if is_global_zero():
                        stage.save_pretrained(checkpoint)
        if is_global_zero():
            self._write_done(plan, inputs, checkpoint, outputs)
        barrier()
        seconds = time.monotonic() - start
        self.log(f"[{plan.name}] {status} in {seconds:.1f}s -> {stage_dir}")
        return StageResult(plan.name, status, seconds)

    def _fit(self, plan: StagePlan, stage: Stage, ctx: StageContext) -> tuple[str, dict[str, Any], dict[str, Any]]:
        last = ctx.stage_dir / "checkpoints" / "last.ckpt"
        resume = last if last.is_file() else None
        if resume:
            check_resume_checkpoint(resume, plan.name)
        self.log(f"[{plan.name}] {'resuming from ' + str(resume) if resume else 'training'} ({plan.plugin})")
        stage.prepare(ctx)
        datamodule = stage.build_datamodule(ctx)
        trainer = ctx.make_trainer(monitor=plan.spec.monitor, module=stage)
        try:
            # weights_only: a resume checkpoint is never unpickled as code, whatever torch's default
            trainer.fit(stage, datamodule=datamodule, ckpt_path=str(resume) if resume else None, weights_only=True)
        except SIGTERMException as exc:
            raise PreemptedError(
                f"stage {plan.name!r} received SIGTERM at step {trainer.global_step}; saved {last}; "
                f"run the same command again to resume"
            ) from exc
        except OSError as exc:  # a full disk or a file-size limit while writing a checkpoint or a log
            raise SoundstageError(
                f"stage {plan.name!r} stopped at step {trainer.global_step}: {exc.strerror or exc}"
                + (f": {exc.filename}" if exc.filename else "")
                + "; checkpoints written before are intact; free space (or raise the file-size limit) and run the same "
                "command again to resume"
            ) from exc
        if trainer.interrupted:
            raise SoundstageError(f"stage {plan.name!r} was interrupted at step {trainer.global_step}; re-run to resume")
        outputs = stage.after_fit(ctx) or {}
        # Collective under FSDP (gathers the full weights); a plain state_dict otherwise.
        state = trainer.strategy.lightning_module_state_dict()
        if trainer.world_size > 1 and not is_sharded(trainer):
            outputs["replica_checksums"] = check_replicas_in_sync(stage, plan.name)
        return ("resumed" if resume else "trained"), outputs, state

    def _context(self, plan: StagePlan) -> StageContext:
        needs_audio = "audio" in plan.spec.consumes
        train, val = self._audio_shards() if needs_audio else (None, None)
        stage_dir = self.stage_dir(plan.name)
        if is_global_zero():
            stage_dir.mkdir(parents=True, exist_ok=True)
            with atomic_path(stage_dir / "recipe.yaml") as tmp:
                tmp.write_text(self.recipe.to_yaml())
        return StageContext(
            name=plan.name,
            stage_dir=stage_dir,
            run_dir=self.run_dir,
            data=self.recipe.data,
            trainer=plan.trainer,
            upstream={d: self.record(d) for d in plan.needs},
            seed=self.recipe.seed,
            train_shards=train,
            val_shards=val,
        )

    def _audio_shards(self) -> tuple[str | None, str | None]:
        if self._shards is None:
            data = self.recipe.data
            if data.train_shards:
                _check_shards_exist(data.train_shards, data.val_shards)
                self._shards = (data.train_shards, data.val_shards)
            else:
                from soundstage.data.corpus import prepare_corpus

                self.log(f"[data] preparing the embedded {data.corpus} corpus ({data.hours} h) in {data.cache_dir}")
                try:
                    self._shards = prepare_corpus(data)
                except ValueError as exc:
                    raise SoundstageError(str(exc)) from exc
        return self._shards

    def _adopt_checkpoint(self, plan: StagePlan) -> Path:
        path = Path(plan.checkpoint).expanduser().resolve()  # type: ignore[arg-type]
        meta = read_stage_metadata(path)
        if meta["plugin"] != plan.plugin:
            raise CheckpointError(
                f"stages.{plan.name}.checkpoint: {path} is a {meta['plugin']!r} checkpoint, not {plan.plugin!r}"
            )
        # The stages that use this one were validated against the recipe's config: the tokens the
        # checkpoint makes (sizes, rates) must be those.
        from .config import build_config
        from .token_contract import TokenExpectation, stream_mismatches

        theirs = plan.spec.token_streams(build_config(plan.spec.config_class, meta["config"], source=str(path)), {})
        ours = plan.spec.token_streams(plan.config, {})
        differ = []
        for kind in sorted(set(theirs) & set(ours)):
            expected = TokenExpectation(kind, ours[kind].vocab_size, ours[kind].frame_rate, ours[kind].levels)
            differ += [f"{kind} {problem}" for problem in stream_mismatches(expected, theirs[kind])]
        if differ:
            raise CheckpointError(f"stages.{plan.name}.checkpoint: {path} does not make the tokens stages.{plan.name}.config "
                                  "declares: " + "; ".join(differ))
        self.log(f"[{plan.name}] using existing model {path}")
        return path

    def _write_done(self, plan: StagePlan, inputs: dict[str, Any], checkpoint: Path | None, outputs: dict[str, Any]) -> None:
        stage_dir = self.stage_dir(plan.name)
        stage_dir.mkdir(parents=True, exist_ok=True)
        ckpt = relative_path(checkpoint, stage_dir) if checkpoint else None
        outputs = portable_outputs(outputs, stage_dir)
        write_json_atomic(
            stage_dir / DONE_FILE,
            {
                "stage": plan.name,
                "plugin": plan.plugin,
                "produces": list(plan.spec.produces),
                "checkpoint": ckpt,
                "outputs": outputs,
                "fingerprint_version": FINGERPRINT_VERSION,
                "fingerprint": fingerprint(inputs),
                "inputs": inputs,
                "product_files": file_hashes(product_files(stage_dir, ckpt, outputs)),
                "config": config_to_dict(plan.config),
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )

    def _restart(self, name: str) -> None:
        """Forget a stage's results (explicit user request): its done marker, checkpoints and model."""
        stage_dir = self.stage_dir(name)
        if stage_dir.exists():
            self.log(f"[{name}] --restart: removing {stage_dir}")
            shutil.rmtree(stage_dir)


def _check_shards_exist(train: str, val: str | None) -> None:
    """Fail before training, in one line, when a local shard of the recipe's data does not exist."""
    from soundstage.data.shards import expand_shards

    for key, spec in (("data.train_shards", train), ("data.val_shards", val)):
        if spec:
            try:
                expand_shards(spec)
            except FileNotFoundError as exc:
                raise SoundstageError(f"{key}: {exc}") from exc
