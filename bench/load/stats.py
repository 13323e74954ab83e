"""Figures of one load step: latency percentiles (nearest rank), throughput, errors by gRPC status."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

OK = "OK"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``q`` % of ``values`` at or below it.

    ``q`` is in [0, 100]; ``q = 0`` gives the minimum, ``q = 100`` the maximum; NaN for no values.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(math.ceil(q / 100.0 * len(ordered)), 1)
    return ordered[rank - 1]


@dataclass
class StepResult:
    """Outcome of one measured load step.

    ``latencies_ms`` are those of successful requests (for an open loop, measured from the scheduled send
    time); ``errors`` counts failed requests by gRPC status name; ``overflow`` counts open-loop sends that
    were skipped because ``max_in_flight`` requests were outstanding.
    """

    target: str
    mode: str
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    errors: Counter[str] = field(default_factory=Counter)
    concurrency: int | None = None
    offered_qps: float | None = None
    scheduled: int = 0
    overflow: int = 0
    peak_in_flight: int = 0

    @property
    def succeeded(self) -> int:
        """Requests answered OK."""
        return len(self.latencies_ms)

    @property
    def failed(self) -> int:
        """Requests answered with an error status (deadline included)."""
        return sum(self.errors.values())

    @property
    def qps(self) -> float:
        """Successful requests per second of the measured window."""
        return self.succeeded / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_rate(self) -> float:
        """Failed / (succeeded + failed); 0 when nothing completed."""
        completed = self.succeeded + self.failed
        return self.failed / completed if completed else 0.0

    def percentile_ms(self, q: float) -> float:
        """Latency percentile ``q`` (0-100) of successful requests, in ms."""
        return percentile(self.latencies_ms, q)

    def summary(self) -> dict[str, object]:
        """JSON-ready figures (latencies in ms, rounded)."""
        return {
            "target": self.target,
            "mode": self.mode,
            "concurrency": self.concurrency,
            "offered_qps": None if self.offered_qps is None else round(self.offered_qps, 1),
            "seconds": round(self.seconds, 3),
            "succeeded": self.succeeded,
            "failed": self.failed,
            "qps": round(self.qps, 1),
            "p50_ms": _rounded(self.percentile_ms(50)),
            "p90_ms": _rounded(self.percentile_ms(90)),
            "p99_ms": _rounded(self.percentile_ms(99)),
            "max_ms": _rounded(self.percentile_ms(100)),
            "errors": dict(sorted(self.errors.items())),
            "scheduled": self.scheduled,
            "overflow": self.overflow,
            "peak_in_flight": self.peak_in_flight,
        }


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)
