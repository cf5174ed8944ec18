"""An upstream semantic tokenizer's ids as per-frame training targets.

HuBERT's masked prediction and the codec's semantic distillation both read them: the tokenizer runs
on every training batch (frozen, never saved with the student), reads audio at the student's sample
rate, and its ids are repeated to the student's frame rate, which must be a whole multiple of the
tokenizer's.
"""
from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F

from soundstage.errors import SoundstageError


def _takes_lengths(tokenizer: Any) -> bool:
    try:
        return "lengths" in inspect.signature(tokenizer.encode).parameters
    except (TypeError, ValueError):
        return False


class TeacherIds:
    """``teacher.encode(wave) -> ids`` at ``frame_rate`` Hz: ``ids(wave, lengths, frames) -> [B, frames]``."""

    def __init__(self, teacher: Any, frame_rate: float, sample_rate: int, student: str) -> None:
        if int(teacher.sample_rate) != int(sample_rate):
            raise SoundstageError(f"{student}: the semantic tokenizer reads {teacher.sample_rate} Hz audio, "
                                  f"the {student} {sample_rate} Hz")
        ratio = frame_rate / float(teacher.frame_rate)
        if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
            raise SoundstageError(
                f"{student}: frame rate {frame_rate:g} Hz is not a whole multiple of the semantic ids' {teacher.frame_rate:g} Hz"
            )
        self.repeat = int(round(ratio))
        self.teacher = teacher.eval().requires_grad_(False)

    @torch.no_grad()
    def __call__(self, wave: torch.Tensor, lengths: torch.Tensor | None, frames: int) -> torch.Tensor:
        """Ids [B, frames] of wave [B, T]: repeated to the student's rate, -1 where the tokenizer made none."""
        teacher = self.teacher.to(wave.device)
        ids = teacher.encode(wave, lengths) if _takes_lengths(teacher) else teacher.encode(wave)  # [B, Tt]
        ids = ids.repeat_interleave(self.repeat, dim=1)[:, :frames]  # [B, <= frames]
        if ids.shape[1] < frames:
            ids = F.pad(ids, (0, frames - ids.shape[1]), value=-1)
        return ids.long()
