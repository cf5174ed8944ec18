"""The stage contract: a LightningModule with a typed config, declared streams and a portable checkpoint.

A stage is trained by the pipeline (``trainable = True``: ``build_datamodule`` then
``trainer.fit``, then ``after_fit``) or runs a job (``trainable = False``: ``run``), e.g. tokenizing
shards or generating samples; a job stage with ``exports_model`` (a pretrained model used as is) is
exported after its run like a trained one. Stages hand work to each other only through their stage
directories: the exported ``model.safetensors`` (weights + resolved config) and the
``outputs`` they return, recorded in the stage's ``done`` marker.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import lightning as L
import torch

from .checkpoint import load_stage_file, save_stage_file
from .errors import SoundstageError
from .stage_spec import StageConfig, StageSpec, config_fields  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from .trainer import TrainerConfig
    from .recipe_schema import DataConfig


@dataclass
class StageRecord:
    """What a finished stage left in its directory (read from its ``done`` marker)."""

    name: str
    plugin: str
    stage_dir: Path
    produces: tuple[str, ...]
    checkpoint: Path | None = None
    outputs: dict[str, Any] = field(default_factory=dict)

    def load(self) -> "Stage":
        """Load this stage's exported model."""
        if self.checkpoint is None:
            raise SoundstageError(f"stage {self.name!r} ({self.plugin}) has no exported model to load")
        return Stage.load_pretrained(self.checkpoint)


@dataclass
class StageContext:
    """Everything a stage may use from the pipeline: its directory, the data, its upstream stages."""

    name: str
    stage_dir: Path
    run_dir: Path
    data: "DataConfig"
    trainer: "TrainerConfig"
    upstream: dict[str, StageRecord] = field(default_factory=dict)
    seed: int = 0
    train_shards: str | None = None  # audio shards (resolved: the user's or the embedded corpus)
    val_shards: str | None = None

    def upstream_for(self, stream: str) -> StageRecord:
        """The needed stage that produces ``stream`` (e.g. ``"acoustic"``); exactly one must."""
        found = [r for r in self.upstream.values() if stream in r.produces]
        if len(found) != 1:
            names = ", ".join(f"{r.name} ({r.plugin}: {list(r.produces)})" for r in self.upstream.values())
            what = "no" if not found else "more than one"
            raise SoundstageError(
                f"stage {self.name!r}: {what} needed stage produces {stream!r} (needs: {names or 'none'})"
            )
        return found[0]

    def load_upstream(self, stream: str) -> "Stage":
        """Load the model of the needed stage that produces ``stream``."""
        return self.upstream_for(stream).load()

    def make_trainer(self, **overrides: Any) -> L.Trainer:
        """A Lightning Trainer for this stage (logs and checkpoints under ``stage_dir``)."""
        from .trainer import build_trainer

        return build_trainer(self.trainer, self.stage_dir, **overrides)


class Stage(L.LightningModule, StageSpec):
    """Base class of every stage plugin.

    The declarations (``config_class``, ``consumes`` / ``produces`` stream names such as ``audio``,
    ``acoustic``, ``semantic``, ``tokens``, the token contract) come from ``StageSpec``, usually through
    the plugin's own spec class (``class MyStage(MySpec, Stage)``); a subclass implements either
    ``build_datamodule`` (+ the usual LightningModule hooks) or ``run``.
    """

    max_nonfinite_in_a_row: ClassVar[int] = 5  # then training stops with a clear error

    @classmethod
    def implementation(cls) -> type["Stage"]:
        return cls  # a Stage subclass is its own spec

    def __init__(self, config: StageConfig) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} expects a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config
        self.nonfinite_steps = 0
        self._nonfinite_in_a_row = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every stage's training_step skips NaN/inf losses (returning None skips the optimizer step).
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("training_step")
        if step is not None and not getattr(step, "_skips_nonfinite", False):
            cls.training_step = _skip_nonfinite(step)  # type: ignore[method-assign]

    def loss_is_finite(self, loss: torch.Tensor) -> bool:
        """True if ``loss`` is finite on every rank; otherwise count the step and return False.

        Automatic-optimisation stages get this for free; manual-optimisation stages call it
        before ``manual_backward`` and skip the step when it returns False.
        """
        finite = bool(torch.isfinite(loss.detach()).all())
        if self._trainer is not None and self.trainer.world_size > 1:
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)  # same decision on all ranks
        if finite:
            self._nonfinite_in_a_row = 0
            return True
        self.nonfinite_steps += 1
        self._nonfinite_in_a_row += 1
        step = self.global_step if self._trainer is not None else -1
        self.log("train/nonfinite_steps", float(self.nonfinite_steps), rank_zero_only=True)
        if self._nonfinite_in_a_row >= self.max_nonfinite_in_a_row:
            last = ""
            if self._trainer is not None and self.trainer.checkpoint_callback is not None:
                last = getattr(self.trainer.checkpoint_callback, "last_model_path", "") or ""
            raise SoundstageError(
                f"stage {self.stage_name!r}: loss was NaN/inf for {self._nonfinite_in_a_row} steps in a row "
                f"(last at step {step}); training stopped. Last good checkpoint: {last or 'none saved yet'}"
            )
        return False

    # --- pipeline hooks -------------------------------------------------------------------
    def build_datamodule(self, ctx: StageContext) -> L.LightningDataModule:
        """The data this stage trains on (trainable stages)."""
        raise NotImplementedError(f"{type(self).__name__} must implement build_datamodule()")

    def prepare(self, ctx: StageContext) -> None:
        """Called before training (e.g. to read sizes from upstream models); default: nothing."""

    def after_fit(self, ctx: StageContext) -> dict[str, Any]:
        """Called once after training on rank 0's behalf; returns extra outputs for the done marker."""
        return {}

    def run(self, ctx: StageContext) -> dict[str, Any]:
        """The job of a non-trainable stage; returns its outputs for the done marker."""
        raise NotImplementedError(f"{type(self).__name__} is not trainable and must implement run()")

    # --- portable checkpoint ------------------------------------------------------------------
    def save_pretrained(
        self, path: str | Path, extra: dict[str, Any] | None = None, state_dict: dict[str, torch.Tensor] | None = None
    ) -> Path:
        """Write weights + resolved config to one safetensors file (atomically).

        ``state_dict`` defaults to this module's; under FSDP pass the gathered full one.
        """
        if not self.stage_name:
            raise SoundstageError(f"{type(self).__name__} is not registered with @register_stage")
        state = self.state_dict() if state_dict is None else state_dict
        return save_stage_file(path, self.stage_name, self.config, state, extra=extra)

    @classmethod
    def load_pretrained(cls, path: str | Path, map_location: str = "cpu") -> "Stage":
        """Load a stage from its safetensors file; ``cls`` may be ``Stage`` or the expected subclass."""
        from .config import build_config
        from .registry import get_stage

        plugin, config_dict, state_dict = load_stage_file(path, map_location)
        stage_cls = get_stage(plugin)
        if cls is not Stage and not issubclass(stage_cls, cls):
            raise SoundstageError(
                f"{path}: checkpoint is of stage {plugin!r}, not {cls.stage_name or cls.__name__!r}"
            )
        config = build_config(stage_cls.config_class, config_dict, where="config", source=str(path))
        stage = stage_cls.from_saved(config, state_dict, Path(path))
        stage.eval()
        return stage

    @classmethod
    def from_saved(cls, config: StageConfig, state_dict: dict[str, torch.Tensor], source: Path) -> "Stage":
        """This stage rebuilt from its saved config and weights (the last step of ``load_pretrained``).

        Override when the weights need their own loader, e.g. a wrapped third-party model.
        """
        stage = cls(config)
        try:
            missing, unexpected = stage.load_state_dict(state_dict, strict=False)
        except RuntimeError as exc:  # shape mismatches
            raise SoundstageError(f"{source}: weights do not fit the {cls.stage_name!r} model built from its config: {exc}") from exc
        if missing or unexpected:
            raise SoundstageError(
                f"{source}: weights do not fit the {cls.stage_name!r} model built from its config "
                f"(missing: {missing[:5]}, unexpected: {unexpected[:5]})"
            )
        return stage


def _skip_nonfinite(training_step):
    @functools.wraps(training_step)
    def wrapper(self: Stage, *args: Any, **kwargs: Any) -> Any:
        out = training_step(self, *args, **kwargs)
        loss = out.get("loss") if isinstance(out, dict) else out
        if self.automatic_optimization and isinstance(loss, torch.Tensor) and not self.loss_is_finite(loss):
            return None
        return out

    wrapper._skips_nonfinite = True  # type: ignore[attr-defined]
    return wrapper
