"""Percentile math and step figures on hand-computed examples."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from bench.load.stats import StepResult, percentile


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        (list(range(1, 101)), 50, 50),
        (list(range(1, 101)), 90, 90),
        (list(range(1, 101)), 99, 99),
        (list(range(1, 101)), 99.5, 100),
        (list(range(1, 101)), 100, 100),
        (list(range(1, 101)), 0, 1),
        ([4, 1, 3, 2], 50, 2),  # rank ceil(0.5 * 4) = 2 of the sorted values
        ([4, 1, 3, 2], 51, 3),
        ([4, 1, 3, 2], 75, 3),
        ([4, 1, 3, 2], 76, 4),
        ([7.5], 99, 7.5),
        ([10, 20, 30, 40, 50, 60, 70, 80, 90, 1000], 90, 90),  # one outlier in ten is above p90 ...
        ([10, 20, 30, 40, 50, 60, 70, 80, 90, 1000], 99, 1000),  # ... and is p99
    ],
)
def test_nearest_rank_percentile(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_percentile_of_nothing_is_nan_and_q_is_checked() -> None:
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_step_figures() -> None:
    step = StepResult(
        target="plan",
        mode="open",
        seconds=2.0,
        latencies_ms=[float(v) for v in range(1, 101)],
        errors=Counter({"UNAVAILABLE": 3, "DEADLINE_EXCEEDED": 1}),
        offered_qps=52.0,
        scheduled=104,
    )
    summary = step.summary()
    assert step.qps == 50.0 and step.failed == 4 and step.error_rate == 4 / 104
    assert (summary["p50_ms"], summary["p90_ms"], summary["p99_ms"], summary["max_ms"]) == (50, 90, 99, 100)
    assert summary["errors"] == {"DEADLINE_EXCEEDED": 1, "UNAVAILABLE": 3}


def test_empty_step_has_no_latency_figures() -> None:
    summary = StepResult(target="t", mode="closed", seconds=1.0, latencies_ms=[]).summary()
    assert summary["qps"] == 0 and summary["p99_ms"] is None and summary["max_ms"] is None
