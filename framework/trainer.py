"""Trainer factory: a ``lightning.Trainer`` from a recipe's typed ``trainer`` section."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional


@dataclass
class TrainerConfig:
    """Recipe keys that configure Lightning's Trainer (per-stage overrides merge on top)."""

    accelerator: str = "auto"
    devices: Any = "auto"  # int, list of ids or "auto"
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | ddp_spawn | fsdp | ...
    precision: str = "32-true"  # auto (bf16-mixed where the device computes bf16, else 32-true) | 32-true | bf16-mixed | 16-mixed
    max_steps: int = -1
    max_epochs: Optional[int] = None
    max_time: Optional[str] = None  # wall-clock budget "DD:HH:MM:SS"; training stops at whichever limit comes first
    accumulate_grad_batches: int = 1
    gradient_clip_val: Optional[float] = None
    val_check_interval: Optional[float] = None  # steps (int-valued) or fraction of an epoch
    check_val_every_n_epoch: Optional[int] = 1
    limit_val_batches: Optional[float] = None
    num_sanity_val_steps: int = 0
    log_every_n_steps: int = 10
    checkpoint_every_n_steps: int = 100
    num_threads: Optional[int] = None  # torch intra-op CPU threads (None: torch's default); 1 on shared CPUs
    ema_decay: Optional[float] = None  # keep an EMA of the weights (exported and used for validation)
    ema_start_step: int = 0
    enable_progress_bar: bool = True
    deterministic: bool = False
    benchmark: bool = False


def build_trainer(
    config: TrainerConfig, stage_dir: str | Path, monitor: str | None = None, module: Any = None, **overrides: Any
):
    """A Lightning Trainer writing TensorBoard logs to ``stage_dir/tb`` and checkpoints to ``stage_dir/checkpoints``.

    Callbacks: ModelCheckpoint (``last.ckpt`` every ``checkpoint_every_n_steps`` and at the end,
    plus the best by ``monitor`` when the stage names one), LearningRateMonitor, a TQDM progress
    bar and the resume checkpoint (``last.ckpt`` on SIGTERM and at the end). Give the ``module`` to
    train so a stage without trainable parameters (k-means) runs under DDP unwrapped.
    """
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.strategies import DDPStrategy

    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from .callbacks import ResumeCheckpoint
    from .errors import SoundstageError
    from .strategies import ParameterFreeDDPStrategy, has_trainable_parameters

    quiet_lightning()
    stage_dir = Path(stage_dir)
    precision = training_precision(config, stage_dir.name)
    ckpt_dir = stage_dir / "checkpoints"
    every = max(1, config.checkpoint_every_n_steps)
    callbacks: list[Any] = [
        # last.ckpt: overwritten every `checkpoint_every_n_steps`, on SIGTERM and at the end (resume point)
        ModelCheckpoint(dirpath=ckpt_dir, filename="last", every_n_train_steps=every, save_top_k=1,
                        enable_version_counter=False),
        ResumeCheckpoint(ckpt_dir / "last.ckpt"),
        LearningRateMonitor(logging_interval="step"),
    ]
    if monitor:
        callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, filename="best-step{step:07d}", auto_insert_metric_name=False,
                                         monitor=monitor, mode="min", save_top_k=1))
    if config.ema_decay is not None:
        from lightning.pytorch.callbacks import EMAWeightAveraging

        # Lightning swaps the averaged weights in for validation and at the end of training,
        # so the exported model is the EMA one; the average is part of last.ckpt for resuming.
        callbacks.append(EMAWeightAveraging(decay=config.ema_decay, update_starting_at_step=config.ema_start_step))
    if config.enable_progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    kwargs: dict[str, Any] = dict(
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        precision=precision,
        max_steps=config.max_steps,
        max_epochs=config.max_epochs,
        max_time=config.max_time,
        accumulate_grad_batches=config.accumulate_grad_batches,
        gradient_clip_val=config.gradient_clip_val,
        val_check_interval=_interval(config.val_check_interval),
        check_val_every_n_epoch=config.check_val_every_n_epoch,
        limit_val_batches=config.limit_val_batches,
        num_sanity_val_steps=config.num_sanity_val_steps,
        log_every_n_steps=config.log_every_n_steps,
        enable_progress_bar=config.enable_progress_bar,
        deterministic=config.deterministic,
        benchmark=config.benchmark,
        default_root_dir=str(stage_dir),
        logger=TensorBoardLogger(save_dir=str(stage_dir), name="tb", version="", default_hp_metric=False),
        callbacks=callbacks,
        enable_model_summary=False,
    )
    kwargs.update(overrides)
    try:
        trainer = L.Trainer(**kwargs)
        if module is not None and type(trainer.strategy) is DDPStrategy and not has_trainable_parameters(module):
            kwargs["strategy"] = ParameterFreeDDPStrategy()  # torch's DDP wrapper refuses such a module
            trainer = L.Trainer(**kwargs)
    except (ValueError, TypeError, MisconfigurationException) as exc:  # bad accelerator/strategy/precision combos
        raise SoundstageError(f"stage {stage_dir.name!r}: cannot build the Trainer from the trainer keys: {exc}") from exc
    return trainer


def training_precision(config: TrainerConfig, stage: str) -> str:
    """``config.precision`` with ``auto`` resolved for this machine; says what ``auto`` chose, and warns
    when bf16 was asked for on a CPU that only emulates it (a time-budgeted stage would train ~30x fewer steps)."""
    from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

    from .precision import cpu_has_native_bf16, is_bf16, resolve_precision, uses_cuda

    precision = resolve_precision(config.precision, config.accelerator)
    if config.precision == "auto":
        rank_zero_info(f"stage {stage!r}: trainer.precision auto -> {precision}")
    elif is_bf16(precision) and not uses_cuda(config.accelerator) and not cpu_has_native_bf16():
        rank_zero_warn(f"stage {stage!r}: trainer.precision {precision} on a CPU without bf16 instructions "
                       "(no AMX / AVX512-BF16) is emulated and far slower than fp32; use trainer.precision=auto")
    return precision


def _interval(value: float | None) -> int | float | None:
    """Lightning reads an int as a step count and a float as a fraction of an epoch."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() and value >= 1 else float(value)



def time_progress(trainer: Any) -> float | None:
    """Share of the ``max_time`` budget used so far in [0, 1], or None without a time budget
    (lets a schedule anneal over a wall-clock budget as it does over ``max_steps``)."""
    from lightning.pytorch.callbacks import Timer

    for callback in trainer.callbacks:
        if isinstance(callback, Timer):
            elapsed, remaining = callback.time_elapsed("train"), callback.time_remaining("train")
            if remaining is not None and elapsed + remaining > 0:
                return min(1.0, elapsed / (elapsed + remaining))
    return None


class _DropLightningBanners:
    """A logging filter for Lightning's start-up lines a user can do nothing about (tips, absent accelerators)."""

    NOISE = ("💡 Tip", "TPU available", "HPU available", "GPU available: False")

    def filter(self, record: Any) -> bool:
        return not str(record.getMessage()).startswith(self.NOISE)


# Lightning warnings about choices soundstage makes on purpose (message prefixes):
_EXPECTED_WARNINGS = (
    # the shard streams split their data by rank and worker themselves (data/stream.py)
    r"Your `IterableDataset` has `__len__` defined",
    # manual-optimisation stages (the codec) checkpoint the state after the step, which is what resume needs
    r"Using ModelCheckpoint with manual optimization and every_n_train_steps",
    # Lightning's own use of a torch API that torch deprecated: nothing a user can change
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)


def quiet_lightning() -> None:
    """Install the filter once on Lightning's rank-zero loggers and ignore the warnings in
    ``_EXPECTED_WARNINGS`` (our own messages, and Lightning's other warnings, are untouched)."""
    import logging
    import warnings

    for message in _EXPECTED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)

    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _DropLightningBanners) for f in log.filters):
            log.addFilter(_DropLightningBanners())
