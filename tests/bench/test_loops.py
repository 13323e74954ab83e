"""Load loops against local coroutines with known service times: counts and scheduling, never speed."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from bench.load.calls import DEADLINE_EXCEEDED
from bench.load.closed_loop import run_closed_loop
from bench.load.open_loop import run_open_loop, scheduled_sends
from bench.load.sweep import best_under_slo, doubling, find_saturation, meets_slo, run_sweep


def sleeper(service_s: float):
    """A target that takes ``service_s`` and succeeds."""

    async def call(timeout_s: float) -> None:
        await asyncio.sleep(service_s)

    return call


def limited_server(slots: int, service_s: float):
    """A target with ``slots`` workers of ``service_s`` each: capacity ``slots / service_s`` requests/s."""
    semaphore = asyncio.Semaphore(slots)

    async def call(timeout_s: float) -> None:
        async with semaphore:
            await asyncio.sleep(service_s)

    return call


async def hang(timeout_s: float) -> None:
    """A target that never answers."""
    await asyncio.Event().wait()


def test_schedule_sizes() -> None:
    assert scheduled_sends(200, 2.0) == 400
    assert scheduled_sends(3, 1.0) == 3  # sends at 0, 1/3, 2/3
    assert scheduled_sends(0.5, 3.0) == 2  # sends at 0 and 2
    assert scheduled_sends(100, 0.005) == 1


def test_open_loop_sends_every_scheduled_request() -> None:
    step = asyncio.run(
        run_open_loop(sleeper(0.005), rate_qps=200, duration_s=1.5, warmup_s=0.25, deadline_s=1.0, max_in_flight=500)
    )
    # The schedule, not the target's speed, fixes the count: 300 sends in 1.5 s at 200/s, all answered.
    assert step.scheduled == 300 and step.succeeded == 300
    assert step.failed == 0 and step.overflow == 0
    assert step.qps == pytest.approx(200.0)
    assert min(step.latencies_ms) >= 5.0 - 1e-3  # latency includes the whole service time


def test_open_loop_counts_overflow_instead_of_queueing() -> None:
    # 20 ms per request from 2 slots at most, scheduled every 5 ms: most sends find 2 requests in flight.
    step = asyncio.run(
        run_open_loop(sleeper(0.02), rate_qps=200, duration_s=1.0, warmup_s=0.0, deadline_s=1.0, max_in_flight=2)
    )
    assert step.peak_in_flight <= 2
    assert step.succeeded + step.overflow == step.scheduled == 200
    assert step.overflow > step.succeeded > 0


def test_open_loop_latency_includes_a_stall_coordinated_omission() -> None:
    # One request blocks the event loop for 0.3 s: the sends scheduled during the stall go out late, and
    # their latency is measured from when they were due, so the stall shows in the tail.
    stalled = False

    async def call(timeout_s: float) -> None:
        nonlocal stalled
        if not stalled:
            stalled = True
            time.sleep(0.3)  # noqa: ASYNC251 - the stall is the point

    step = asyncio.run(run_open_loop(call, rate_qps=100, duration_s=1.0, warmup_s=0.0, deadline_s=1.0))
    assert step.succeeded == 100
    late = [latency for latency in step.latencies_ms if latency >= 150.0]
    assert len(late) >= 15  # sends due in the first half of the stall waited at least 150 ms each


def test_closed_loop_against_a_hanging_target_stops_and_counts_deadlines() -> None:
    started = time.monotonic()
    step = asyncio.run(run_closed_loop(hang, concurrency=4, duration_s=0.6, warmup_s=0.0, deadline_s=0.2))
    elapsed = time.monotonic() - started
    assert step.succeeded == 0 and set(step.errors) == {DEADLINE_EXCEEDED}
    # Each worker sends one request per deadline while the window is open: at most ceil(0.6 / 0.2) + 1 each.
    assert 4 <= step.errors[DEADLINE_EXCEEDED] == step.scheduled <= 4 * (math.ceil(0.6 / 0.2) + 1)
    assert elapsed < 0.6 + 0.2 + 5.0  # ends after the window plus one deadline (generous scheduling slack)


def test_open_loop_against_a_hanging_target_stops_and_counts_deadlines() -> None:
    step = asyncio.run(run_open_loop(hang, rate_qps=20, duration_s=0.5, warmup_s=0.0, deadline_s=0.2))
    assert step.scheduled == 10 and step.errors[DEADLINE_EXCEEDED] == 10 and step.succeeded == 0


def test_closed_loop_request_bound_and_concurrency() -> None:
    step = asyncio.run(run_closed_loop(sleeper(0.002), concurrency=3, duration_s=60.0, warmup_s=0.0, max_requests=30))
    assert step.scheduled == 30 and step.succeeded == 30  # stopped by the count, long before 60 s
    assert step.peak_in_flight == 3 and step.concurrency == 3


def test_closed_loop_excludes_warmup_requests() -> None:
    sent = 0

    async def counted(timeout_s: float) -> None:
        nonlocal sent
        sent += 1
        await asyncio.sleep(0.01)

    step = asyncio.run(run_closed_loop(counted, concurrency=1, duration_s=0.3, warmup_s=0.2))
    assert 0 < step.succeeded == step.scheduled < sent


def test_sweep_levels_and_best_under_slo() -> None:
    assert doubling(32) == [1, 2, 4, 8, 16, 32]
    assert doubling(12) == [1, 2, 4, 8, 12]
    steps = asyncio.run(run_sweep(limited_server(2, 0.01), [1, 2, 8], duration_s=0.3, warmup_s=0.0, deadline_s=1.0))
    assert [step.concurrency for step in steps] == [1, 2, 8]
    assert best_under_slo(steps, slo_p99_ms=1e6) is max(steps, key=lambda s: s.qps)
    assert best_under_slo(steps, slo_p99_ms=0.0) is None


@pytest.mark.slow  # 15 s; the sweep's pieces have their own tests in make test
def test_saturation_finder_brackets_the_capacity() -> None:
    # 4 slots of 10 ms: at most 400 requests/s can be served. At 1.25x that, 1.5 s leave a backlog of 150
    # requests (375 ms of waiting) at the end, so no rate above 500/s can meet a 250 ms p99.
    capacity_qps = 4 / 0.01
    slo_p99_ms = 250.0
    saturation = asyncio.run(
        find_saturation(
            limited_server(4, 0.01),
            slo_p99_ms=slo_p99_ms,
            start_qps=50.0,
            max_qps=5000.0,
            step_duration_s=1.5,
            warmup_s=0.0,
            deadline_s=2.0,
            max_steps=8,
        )
    )
    steps = saturation.steps
    passing = [step for step in steps if meets_slo(step, slo_p99_ms)]
    assert steps[0].offered_qps == 50.0 and len(steps) <= 8
    assert 0 < saturation.saturation_qps == max(step.qps for step in passing)
    assert saturation.saturation_qps <= 1.25 * capacity_qps
    # The search bracketed it: some faster rate was tried and failed.
    assert any(step.offered_qps > saturation.saturation_qps for step in steps if step not in passing)
