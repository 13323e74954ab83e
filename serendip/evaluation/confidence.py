"""Bootstrap confidence intervals over users (or requests), with fixed seeds.

Intervals are bias-shifted percentile intervals: the 2.5 / 97.5 % percentiles of the resampled statistic θ*,
shifted by the bootstrap bias estimate θ̂ − mean(θ*). For means and ratios the shift is negligible; for
set-size metrics (coverage, Gini) resampling with replacement repeats users and so biases θ* (fewer distinct
items), and the shift re-centres the interval on the estimate while keeping the bootstrap spread.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Statistic = Callable[[np.ndarray], float]
"""A metric of the units whose indices it is given (indices may repeat: a bootstrap resample)."""


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its percentile-bootstrap interval."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float | None]:
        """JSON-ready (NaN -> None)."""
        return {name: None if math.isnan(x) else round(x, 6) for name, x in vars(self).items()}


def _interval(value: float, samples: list[float], level: float) -> tuple[float, float]:
    finite = np.asarray([s for s in samples if not math.isnan(s)], dtype=np.float64)
    if finite.size == 0 or math.isnan(value):
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    shift = value - float(finite.mean())
    return float(np.percentile(finite, tail)) + shift, float(np.percentile(finite, 100 - tail)) + shift


def bootstrap(statistic: Statistic, units: int, resamples: int, seed: int, level: float = 0.95) -> Estimate:
    """``statistic`` on all ``units`` and its interval over ``resamples`` resamples of the units with replacement."""
    value = statistic(np.arange(units))
    if units == 0 or resamples == 0:
        return Estimate(value, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    samples = [statistic(rng.integers(0, units, units)) for _ in range(resamples)]
    return Estimate(value, *_interval(value, samples, level))


def bootstrap_ratio(
    statistic: Statistic,
    units: int,
    reference: Statistic,
    reference_units: int,
    resamples: int,
    seed: int,
    level: float = 0.95,
) -> Estimate:
    """Relative change statistic / reference − 1 between two independent samples (two arms' segments).

    Each resample draws both samples independently with replacement.
    """

    def change(value: float, base: float) -> float:
        return value / base - 1 if base else math.nan

    value = change(statistic(np.arange(units)), reference(np.arange(reference_units)))
    if units == 0 or reference_units == 0 or resamples == 0:
        return Estimate(value, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    samples = [
        change(statistic(rng.integers(0, units, units)), reference(rng.integers(0, reference_units, reference_units)))
        for _ in range(resamples)
    ]
    return Estimate(value, *_interval(value, samples, level))
