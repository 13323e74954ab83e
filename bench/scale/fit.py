"""Scaling exponents: the least-squares slope of log(cost) against log(items)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def fit_exponent(items: Sequence[float], costs: Sequence[float]) -> float | None:
    """Slope b of ``log(cost) = a + b log(items)`` by least squares; None with fewer than two usable points.

    Points with a non-positive or missing cost are left out (a stage that did not fit at that size).
    """
    points = [
        (math.log(n), math.log(c)) for n, c in zip(items, costs, strict=True) if n > 0 and c is not None and c > 0
    ]
    if len({x for x, _ in points}) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
