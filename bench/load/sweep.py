"""Concurrency sweep (closed loop at 1, 2, 4, ...) and the saturation finder (open loop against a p99 SLO)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.load.calls import Call
from bench.load.closed_loop import run_closed_loop
from bench.load.open_loop import run_open_loop
from bench.load.stats import StepResult


def doubling(up_to: int) -> list[int]:
    """1, 2, 4, ... up to and including ``up_to`` (``up_to`` itself closes the list if not a power of 2)."""
    levels = [2**i for i in range(int(math.log2(up_to)) + 1)] if up_to >= 1 else []
    return levels + ([up_to] if levels and levels[-1] != up_to else [])


async def run_sweep(
    call: Call,
    concurrencies: list[int],
    *,
    duration_s: float,
    warmup_s: float,
    deadline_s: float,
    max_requests: int | None = None,
    target: str = "",
) -> list[StepResult]:
    """One closed-loop step per concurrency level, in the given order."""
    return [
        await run_closed_loop(
            call,
            concurrency=concurrency,
            duration_s=duration_s,
            warmup_s=warmup_s,
            deadline_s=deadline_s,
            max_requests=max_requests,
            target=target,
        )
        for concurrency in concurrencies
    ]


def meets_slo(step: StepResult, slo_p99_ms: float) -> bool:
    """No error, no overflow, at least one success, and p99 within the SLO."""
    return step.succeeded > 0 and step.failed == 0 and step.overflow == 0 and step.percentile_ms(99) <= slo_p99_ms


def best_under_slo(steps: list[StepResult], slo_p99_ms: float) -> StepResult | None:
    """The step with the highest QPS among those meeting the SLO (None when none does)."""
    passing = [step for step in steps if meets_slo(step, slo_p99_ms)]
    return max(passing, key=lambda step: step.qps, default=None)


@dataclass
class Saturation:
    """Result of the saturation search: the highest sustained rate meeting the SLO, and every step tried."""

    slo_p99_ms: float
    saturation_qps: float
    steps: list[StepResult]

    def summary(self) -> dict[str, object]:
        """JSON-ready result."""
        return {
            "slo_p99_ms": self.slo_p99_ms,
            "saturation_qps": round(self.saturation_qps, 1),
            "steps": [step.summary() for step in self.steps],
        }


async def find_saturation(
    call: Call,
    *,
    slo_p99_ms: float,
    start_qps: float,
    max_qps: float,
    step_duration_s: float,
    warmup_s: float,
    deadline_s: float,
    max_in_flight: int = 256,
    max_steps: int = 10,
    resolution: float = 0.1,
    target: str = "",
) -> Saturation:
    """Highest open-loop rate whose step meets the SLO (p99 <= ``slo_p99_ms``, no error, no overflow).

    Doubles the rate from ``start_qps`` until a step fails (or ``max_qps``) -- halves it while the first steps
    fail --, then bisects geometrically
    between the last passing and the first failing rate until they are within ``resolution`` (relative)
    of each other. At most ``max_steps`` steps run. ``saturation_qps`` is the achieved QPS of the best
    passing step (0 when none passed).
    """
    steps: list[StepResult] = []

    async def step(rate: float) -> bool:
        result = await run_open_loop(
            call,
            rate_qps=rate,
            duration_s=step_duration_s,
            warmup_s=warmup_s,
            deadline_s=deadline_s,
            max_in_flight=max_in_flight,
            target=target,
        )
        steps.append(result)
        return meets_slo(result, slo_p99_ms)

    passing_rate, failing_rate = 0.0, math.inf
    rate = min(start_qps, max_qps)
    while len(steps) < max_steps:  # bracket: double while passing, halve while failing
        if await step(rate):
            passing_rate = rate
            if failing_rate < math.inf or rate * 2 > max_qps:
                break
            rate *= 2
        else:
            failing_rate = rate
            if passing_rate > 0:
                break
            rate /= 2
    while len(steps) < max_steps and passing_rate > 0 and failing_rate < math.inf:
        if failing_rate / passing_rate <= 1.0 + resolution:
            break
        middle = math.sqrt(passing_rate * failing_rate)
        if await step(middle):
            passing_rate = middle
        else:
            failing_rate = middle
    best = best_under_slo(steps, slo_p99_ms)
    return Saturation(slo_p99_ms, best.qps if best else 0.0, steps)
