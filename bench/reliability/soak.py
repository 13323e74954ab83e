"""Soak: find the saturation rate of a target against a p99 SLO, then hold a fraction of it with no error."""

from __future__ import annotations

from dataclasses import dataclass

from bench.load.calls import Call
from bench.load.open_loop import run_open_loop
from bench.load.stats import StepResult
from bench.load.sweep import Saturation, find_saturation


@dataclass
class SoakReport:
    """The saturation search, the soak step at ``fraction`` of it, and whether the soak had no error."""

    saturation: Saturation
    fraction: float
    soak: StepResult | None

    @property
    def passed(self) -> bool:
        """A saturation rate was found and the soak completed every request without error or overflow."""
        return (
            self.soak is not None
            and self.soak.failed == 0
            and self.soak.overflow == 0
            and self.soak.succeeded == self.soak.scheduled
        )

    def summary(self) -> dict[str, object]:
        """JSON-ready report."""
        return {
            "saturation": self.saturation.summary(),
            "fraction": self.fraction,
            "soak_rate_qps": None if self.soak is None else self.soak.offered_qps,
            "soak": None if self.soak is None else self.soak.summary(),
            "passed": self.passed,
        }


async def run_soak(
    call: Call,
    *,
    target: str,
    slo_p99_ms: float,
    soak_s: float,
    fraction: float = 0.8,
    start_qps: float = 50.0,
    max_qps: float = 20000.0,
    search_step_s: float = 5.0,
    max_search_steps: int = 8,
    deadline_s: float = 1.0,
    max_in_flight: int = 256,
) -> SoakReport:
    """Saturation search (open loop, ``search_step_s`` per step), then ``soak_s`` at ``fraction`` × saturation."""
    saturation = await find_saturation(
        call,
        slo_p99_ms=slo_p99_ms,
        start_qps=start_qps,
        max_qps=max_qps,
        step_duration_s=search_step_s,
        warmup_s=0.5,
        deadline_s=deadline_s,
        max_in_flight=max_in_flight,
        max_steps=max_search_steps,
        target=target,
    )
    if saturation.saturation_qps <= 0:
        return SoakReport(saturation, fraction, None)
    soak = await run_open_loop(
        call,
        rate_qps=fraction * saturation.saturation_qps,
        duration_s=soak_s,
        warmup_s=1.0,
        deadline_s=deadline_s,
        max_in_flight=max_in_flight,
        target=target,
    )
    return SoakReport(saturation, fraction, soak)
