"""Open loop: requests sent on a fixed schedule whatever the target's speed (coordinated-omission safe).

Request ``i`` is scheduled at ``start + i / rate``; its latency is measured from that scheduled time, so a
stalled target or a late client shows up in the latencies instead of silently lowering the offered load.
At most ``max_in_flight`` requests are outstanding: a send due while that many are in flight is skipped and
counted as ``overflow`` (never queued, never blocking the schedule).
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter

from bench.load.calls import DEADLINE_EXCEEDED, Call, timed_call
from bench.load.stats import OK, StepResult


def scheduled_sends(rate_qps: float, seconds: float) -> int:
    """Number of sends a schedule of ``rate_qps`` holds in ``seconds`` (sends at 0, 1/rate, ... < seconds)."""
    return math.ceil(round(rate_qps * seconds, 9))


async def run_open_loop(
    call: Call,
    *,
    rate_qps: float,
    duration_s: float,
    warmup_s: float = 0.5,
    deadline_s: float = 1.0,
    max_in_flight: int = 256,
    max_requests: int | None = None,
    stop: asyncio.Event | None = None,
    target: str = "",
) -> StepResult:
    """Send ``call`` at ``rate_qps`` for ``warmup_s`` (unmeasured) then ``duration_s`` (or ``max_requests`` sends).

    Setting ``stop`` ends the schedule early. Returns once every measured request has completed or hit
    ``deadline_s``.
    """
    if rate_qps <= 0 or max_in_flight < 1:
        raise ValueError("rate_qps must be > 0 and max_in_flight >= 1")
    loop = asyncio.get_running_loop()
    interval_s = 1.0 / rate_qps
    warmup_sends = scheduled_sends(rate_qps, warmup_s)
    measured_sends = scheduled_sends(rate_qps, duration_s)
    if max_requests is not None:
        measured_sends = min(measured_sends, max_requests)
    latencies_ms: list[float] = []
    errors: Counter[str] = Counter()
    in_flight: set[asyncio.Task[None]] = set()
    measured_tasks: set[asyncio.Task[None]] = set()
    overflow = peak_in_flight = 0

    async def send(scheduled_at: float, measured: bool) -> None:
        outcome = await timed_call(call, deadline_s)
        if not measured:
            return
        if outcome == OK:
            latencies_ms.append((loop.time() - scheduled_at) * 1000.0)
        else:
            errors[outcome] += 1

    start = loop.time()
    for index in range(warmup_sends + measured_sends):
        scheduled_at = start + index * interval_s
        delay = scheduled_at - loop.time()
        await asyncio.sleep(max(delay, 0.0))  # sleep(0) still lets responses in when the schedule runs late
        if stop is not None and stop.is_set():
            measured_sends = max(index - warmup_sends, 0)
            break
        measured = index >= warmup_sends
        if len(in_flight) >= max_in_flight:
            overflow += measured
            continue
        task = asyncio.create_task(send(scheduled_at, measured))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        if measured:
            measured_tasks.add(task)
        peak_in_flight = max(peak_in_flight, len(in_flight))
    if in_flight:
        # Each request is bounded by its deadline already; this bounds the drain should a call ignore cancellation.
        _done, stuck = await asyncio.wait(set(in_flight), timeout=deadline_s + 1.0)
        for task in stuck:
            task.cancel()
        if stuck & measured_tasks:
            errors[DEADLINE_EXCEEDED] += len(stuck & measured_tasks)
    return StepResult(
        target=target,
        mode="open",
        seconds=max(measured_sends * interval_s, 1e-9),
        latencies_ms=latencies_ms,
        errors=errors,
        offered_qps=rate_qps,
        scheduled=measured_sends,
        overflow=overflow,
        peak_in_flight=peak_in_flight,
    )
