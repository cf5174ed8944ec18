"""How many tokens of each stream one window of time holds (torch-free: LM specs size their
sequences with it at ``recipe validate``; the token datamodule crops it)."""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Mapping


def _rate_grid(rates: list[float]) -> Fraction:
    """The largest frequency g such that every rate is an integer multiple of g (gcd of the rates)."""
    fr = [Fraction(r).limit_denominator(1000) for r in rates]
    num = math.gcd(*[f.numerator for f in fr])
    den = math.lcm(*[f.denominator for f in fr])
    return Fraction(num, den)


def _per_step(rate: float, grid: Fraction) -> int:
    return int(Fraction(rate).limit_denominator(1000) / grid)


def window_lengths(rates: Mapping[str, float], window_seconds: float) -> dict[str, int]:
    """Tokens of each stream in a window of about ``window_seconds`` that starts and ends on frame
    boundaries of every stream: whole steps of 1 / gcd(rates) seconds, at least one (25 Hz semantic +
    50 Hz acoustic, 4 s: 100 and 200). The one place a window's length is computed: the LM stages size
    their sequences with it and the token datamodule crops it."""
    grid = _rate_grid(list(rates.values()))
    steps = max(int(math.floor(window_seconds * grid + 1e-9)), 1)
    return {s: steps * _per_step(r, grid) for s, r in rates.items()}
