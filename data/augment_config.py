"""The training-crop augmentation's config (no numpy: recipe validation reads it; ``augment.py`` applies it)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AugmentConfig:
    """Training-crop augmentation. ``prob = 0`` (the default) turns it off; each step has its own chance."""

    prob: float = 0.0  # share of training crops degraded at all
    room_prob: float = 0.5  # a simulated small room (image sources up to ``room_order`` reflections)
    room_order: int = 6
    room_absorption: list[float] = field(default_factory=lambda: [0.1, 0.4])  # wall absorption range
    # rooms simulated once per loader worker (fixed seed), one drawn per crop: a fresh simulation costs
    # ~28 ms of CPU per crop, a tenth of the codec's update on two cores (benchmarks/cpu_step.py). 0: a new room per crop
    room_bank: int = 64
    # a high shelf (corner drawn from ``tilt_corner_hz``, gain from ``tilt_db``): darker or brighter recordings.
    # The 8 alsa-utils speech recordings are darker than the espeak corpus: ~10 dB less at 2-4 kHz relative to <500 Hz
    tilt_prob: float = 0.5
    tilt_db: list[float] = field(default_factory=lambda: [-15.0, 6.0])
    tilt_corner_hz: list[float] = field(default_factory=lambda: [500.0, 4000.0])
    eq_prob: float = 0.5  # seven-band parametric EQ (a microphone's or a room's colouring)
    eq_gain_db: float = 6.0  # each band's gain is drawn from +-this
    noise_prob: float = 0.5  # coloured noise (white to brown or blue) at an SNR drawn from ``noise_snr_db``
    noise_snr_db: list[float] = field(default_factory=lambda: [15.0, 45.0])
    gain_db: list[float] = field(default_factory=lambda: [-12.0, 0.0])  # level change, on every degraded crop

    def __post_init__(self) -> None:  # a bad value fails when the recipe is read, not when training starts
        self.check()

    def check(self) -> None:
        """Raise ``ValueError`` naming the first out-of-range key (``build_config`` adds the recipe path)."""
        for key in ("prob", "room_prob", "tilt_prob", "eq_prob", "noise_prob"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"augment.{key}: a probability in [0, 1], got {getattr(self, key)}")
        for key in ("room_absorption", "tilt_db", "tilt_corner_hz", "noise_snr_db", "gain_db"):
            lo_hi = getattr(self, key)
            if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
                raise ValueError(f"augment.{key}: a range [low, high], got {list(lo_hi)}")
        if not 0.0 < self.room_absorption[0] <= self.room_absorption[1] <= 1.0:
            raise ValueError(f"augment.room_absorption: within (0, 1], got {list(self.room_absorption)}")
        if self.room_bank < 0:
            raise ValueError(f"augment.room_bank: a number of rooms >= 0, got {self.room_bank}")
        if self.tilt_corner_hz[0] <= 0:
            raise ValueError(f"augment.tilt_corner_hz: positive frequencies, got {list(self.tilt_corner_hz)}")
