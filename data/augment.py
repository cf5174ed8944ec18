"""Microphone-like degradations of training crops (audiomentations): a room, a tilt, an EQ, noise, a level.

A codec trained on clean synthetic speech meets real recordings with room reflections, a microphone's
colouring and background noise. Degrading a share of the training crops shows it those. Validation and
tokenization never augment. Each crop's randomness is drawn from the training stream's RNG, so the same seed
gives the same degradations (a resumed run, like its crops, draws fresh ones rather than replaying); the global
``random`` and ``numpy`` states are left as they were.
Needs the ``augment`` extra: ``pip install "soundstage[augment]"``.
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from soundstage.errors import RecipeError

from .augment_config import AugmentConfig  # noqa: F401  (re-exported)


class Augmenter:
    """``augmenter(wave [T] float32, rng) -> wave [T]``: degrades the crop with probability ``config.prob``."""

    def __init__(self, config: AugmentConfig, sample_rate: int) -> None:
        config.check()
        self.config, self.sample_rate = config, sample_rate
        self._steps = self._build()  # here, so a missing extra fails before training, not per sample
        self._rooms: list[np.ndarray] | None = None  # the bank's impulse responses, drawn on first use

    def _build(self):
        try:
            from audiomentations import AddColorNoise, Gain, HighShelfFilter, RoomSimulator, SevenBandParametricEQ
        except ImportError as exc:
            raise RecipeError('augment.prob > 0 needs audiomentations: pip install "soundstage[augment]"') from exc
        c = self.config
        room = RoomSimulator(
            p=1.0, use_ray_tracing=False, max_order=c.room_order, leave_length_unchanged=True,
            calculation_mode="absorption", min_absorption_value=c.room_absorption[0],
            max_absorption_value=c.room_absorption[1],
        )
        nyquist_margin = 0.45 * self.sample_rate  # shelf corners stay below Nyquist at any sample rate
        tilt = HighShelfFilter(
            p=c.tilt_prob, min_center_freq=min(c.tilt_corner_hz[0], nyquist_margin),
            max_center_freq=min(c.tilt_corner_hz[1], nyquist_margin),
            min_gain_db=c.tilt_db[0], max_gain_db=c.tilt_db[1],
        )
        eq = SevenBandParametricEQ(p=c.eq_prob, min_gain_db=-c.eq_gain_db, max_gain_db=c.eq_gain_db)
        noise = AddColorNoise(p=c.noise_prob, min_snr_db=c.noise_snr_db[0], max_snr_db=c.noise_snr_db[1])
        gain = Gain(p=1.0, min_gain_db=c.gain_db[0], max_gain_db=c.gain_db[1])
        return room, (tilt, eq, noise, gain)

    def __call__(self, wave: np.ndarray, rng: random.Random) -> np.ndarray:
        c = self.config
        if c.prob <= 0.0 or rng.random() >= c.prob:
            return wave
        if self._steps is None:  # unpickled in a DataLoader worker
            self._steps = self._build()
        room, rest = self._steps
        out = np.ascontiguousarray(wave, dtype=np.float32)
        with _seeded_globals(rng):
            if rng.random() < c.room_prob:
                wet = self._banked_room(out, rng) if c.room_bank else room(out, sample_rate=self.sample_rate)
                out = _match_rms(wet, out)  # a room adds no loudness
            for step in rest:
                out = step(out, sample_rate=self.sample_rate)
        peak = float(np.abs(out).max(initial=0.0))
        if peak > 0.99:  # never clip: scale the crop down instead
            out = out * (0.99 / peak)
        return out.astype(np.float32, copy=False)

    def _banked_room(self, wave: np.ndarray, rng: random.Random) -> np.ndarray:
        """``wave`` in one of ``room_bank`` rooms, simulated once (seed 0, so every worker has the same bank)."""
        from scipy.signal import fftconvolve

        if self._rooms is None:
            room, draws = self._steps[0], random.Random(0)
            self._rooms = []
            for _ in range(self.config.room_bank):
                with _seeded_globals(draws):  # draws the room and computes its impulse response
                    room.randomize_parameters(np.zeros(self.sample_rate // 10, np.float32), self.sample_rate)
                self._rooms.append(np.asarray(room.room.rir[0][0], dtype=np.float32))
        rir = self._rooms[rng.randrange(len(self._rooms))]
        return fftconvolve(wave, rir)[: len(wave)].astype(np.float32)

    def __getstate__(self) -> dict:  # DataLoader workers rebuild the transforms (and their own bank)
        return {**self.__dict__, "_steps": None, "_rooms": None}


def _match_rms(wet: np.ndarray, dry: np.ndarray) -> np.ndarray:
    wet_rms = float(np.sqrt(np.mean(np.square(wet, dtype=np.float64))))
    dry_rms = float(np.sqrt(np.mean(np.square(dry, dtype=np.float64))))
    return wet * (dry_rms / wet_rms) if wet_rms > 1e-9 else wet


@contextmanager
def _seeded_globals(rng: random.Random) -> Iterator[None]:
    """audiomentations draws from the global ``random`` and ``numpy.random``: seed both from ``rng``, then restore."""
    saved = random.getstate(), np.random.get_state()
    random.seed(rng.getrandbits(64))
    np.random.seed(rng.getrandbits(32))
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
