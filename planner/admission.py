"""Admission control for LIVE planning: an online latency estimate and a bound on in-flight work.

A cache miss goes LIVE only when the request's remaining budget covers the LIVE latency measured so far
and fewer than ``max_in_flight`` LIVE runs are under way; otherwise the Planner answers FALLBACK at once.
Identical concurrent LIVE runs (same key) are shared, and a run whose callers have all left keeps going to
completion (its result is still worth keeping), so callers never wait past their own deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class LatencyEstimate:
    """A latency's upper range, tracked online: EWMA of the mean plus ``spread`` EWMAs of the deviation."""

    def __init__(self, prior_s: float, alpha: float = 0.2, spread: float = 2.0) -> None:
        self.mean_s = prior_s
        self.deviation_s = 0.0
        self.alpha = alpha
        self.spread = spread
        self.samples = 0

    def observe(self, seconds: float) -> None:
        """Fold one measured latency in (the first sample replaces the prior)."""
        if self.samples == 0:
            self.mean_s, self.deviation_s = seconds, seconds / 2
        else:
            self.deviation_s += self.alpha * (abs(seconds - self.mean_s) - self.deviation_s)
            self.mean_s += self.alpha * (seconds - self.mean_s)
        self.samples += 1

    @property
    def value_s(self) -> float:
        """The latency to budget for."""
        return self.mean_s + self.spread * self.deviation_s


class SharedRuns(Generic[T]):
    """At most one run per key; each run is timed, and counted as in flight until it ends."""

    def __init__(self, on_success: Callable[[Hashable, T, float], None] | None = None) -> None:
        self._in_flight: dict[Hashable, asyncio.Task] = {}
        self._on_success = on_success

    def __len__(self) -> int:
        return len(self._in_flight)

    def __contains__(self, key: object) -> bool:
        return key in self._in_flight

    def start(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> asyncio.Task:
        """The run for ``key``: the one in flight, or a new one started now."""
        task = self._in_flight.get(key)
        if task is None:
            started = time.monotonic()
            task = asyncio.ensure_future(work())
            self._in_flight[key] = task
            task.add_done_callback(lambda done: self._finished(key, done, time.monotonic() - started))
        return task

    def _finished(self, key: Hashable, task: asyncio.Task, seconds: float) -> None:
        self._in_flight.pop(key, None)
        if not task.cancelled() and task.exception() is None and self._on_success is not None:
            self._on_success(key, task.result(), seconds)


class LiveAdmission:
    """Decides whether a cache miss may go LIVE, and runs the admitted work (shared per key)."""

    def __init__(self, max_in_flight: int = 8, prior_s: float = 0.25, margin_s: float = 0.002) -> None:
        self.max_in_flight = max_in_flight
        self.margin_s = margin_s
        self.latency = LatencyEstimate(prior_s)
        self.runs: SharedRuns = SharedRuns(on_success=lambda _key, _result, seconds: self.latency.observe(seconds))

    def refusal(self, key: Hashable, remaining_s: float) -> str | None:
        """Why LIVE is refused for a request with ``remaining_s`` left; None when admitted.

        A request whose key is already in flight joins that run whatever its budget (it costs nothing).
        """
        if key in self.runs:
            return None
        if len(self.runs) >= self.max_in_flight:
            return "in_flight_bound"
        if remaining_s - self.margin_s < self.latency.value_s:
            return "budget_below_live_latency"
        return None

    async def wait(self, key: Hashable, work: Callable[[], Awaitable[T]], timeout_s: float) -> T:
        """The shared run's result within ``timeout_s`` (TimeoutError after it; the run itself goes on)."""
        task = self.runs.start(key, work)
        return await asyncio.wait_for(asyncio.shield(task), timeout_s)
