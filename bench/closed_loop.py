"""Closed-loop load: N concurrent workers each issue the next call as soon as the last returns."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
import numpy as np
from tritonclient.utils import InferenceServerException


@dataclass
class LoadResult:
    """Throughput, latency percentiles (ms) and error counts by gRPC status of one load step."""

    concurrency: int
    requests: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    errors: dict[str, int]

    @property
    def qps(self) -> float:
        """Successful requests per second."""
        return len(self.latencies_ms) / self.seconds

    def percentile_ms(self, q: float) -> float:
        """Latency percentile ``q`` (0-100) over successful requests."""
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        """JSON-ready figures."""
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "qps": round(self.qps, 1),
            "p50_ms": round(self.percentile_ms(50), 3),
            "p90_ms": round(self.percentile_ms(90), 3),
            "p99_ms": round(self.percentile_ms(99), 3),
            "errors": self.errors,
        }


def status_name(error: grpc.RpcError | InferenceServerException) -> str:
    """The gRPC status name of a failed call (``StatusCode.UNAVAILABLE`` → ``UNAVAILABLE``)."""
    if isinstance(error, grpc.RpcError):
        return error.code().name
    return (error.status() or "UNKNOWN").removeprefix("StatusCode.")


async def run_closed_loop(
    call: Callable[[], Awaitable[object]], *, concurrency: int, duration_s: float, warmup_s: float = 0.5
) -> LoadResult:
    """Drive ``call`` from ``concurrency`` workers for ``duration_s`` after ``warmup_s`` of unmeasured load."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    started = time.perf_counter()
    measure_from = started + warmup_s
    stop_at = measure_from + duration_s

    async def worker() -> None:
        while (now := time.perf_counter()) < stop_at:
            try:
                await call()
            except (grpc.RpcError, InferenceServerException) as error:
                if now >= measure_from:
                    errors[status_name(error)] += 1
                continue
            if now >= measure_from:
                latencies.append((time.perf_counter() - now) * 1000.0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoadResult(concurrency, len(latencies) + sum(errors.values()), duration_s, latencies, dict(errors))
