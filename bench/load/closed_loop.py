"""Closed loop: ``concurrency`` workers, each sending its next request as soon as the last one returns."""

from __future__ import annotations

import asyncio
from collections import Counter

from bench.load.calls import Call, timed_call
from bench.load.collector import collector_paused
from bench.load.stats import OK, StepResult


async def run_closed_loop(
    call: Call,
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float = 0.5,
    deadline_s: float = 1.0,
    max_requests: int | None = None,
    target: str = "",
) -> StepResult:
    """Drive ``call`` from ``concurrency`` workers after ``warmup_s`` of unmeasured load.

    The measured window ends after ``duration_s`` or once ``max_requests`` measured requests were sent,
    whichever comes first; every request carries ``deadline_s``, so the step ends at most ``deadline_s``
    after the window even when the target hangs. Only requests sent inside the window are counted.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    loop = asyncio.get_running_loop()
    latencies_ms: list[float] = []
    errors: Counter[str] = Counter()
    measure_from = loop.time() + warmup_s
    stop_at = measure_from + duration_s
    sent = 0
    in_flight = peak_in_flight = 0
    last_completion = measure_from

    def window_open(now: float) -> bool:
        return now < stop_at and (max_requests is None or now < measure_from or sent < max_requests)

    async def worker() -> None:
        nonlocal sent, in_flight, peak_in_flight, last_completion
        while window_open(started := loop.time()):
            measured = started >= measure_from
            sent += measured
            in_flight += 1
            peak_in_flight = max(peak_in_flight, in_flight)
            outcome = await timed_call(call, deadline_s)
            in_flight -= 1
            if not measured:
                continue
            finished = loop.time()
            last_completion = max(last_completion, finished)
            if outcome == OK:
                latencies_ms.append((finished - started) * 1000.0)
            else:
                errors[outcome] += 1

    with collector_paused():
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return StepResult(
        target=target,
        mode="closed",
        seconds=max(last_completion - measure_from, 1e-9),
        latencies_ms=latencies_ms,
        errors=errors,
        concurrency=concurrency,
        scheduled=sent,
        peak_in_flight=peak_in_flight,
    )
