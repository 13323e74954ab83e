"""Prometheus metrics of the gRPC services: request count and latency per method and status code."""

from __future__ import annotations

from functools import cache

from prometheus_client import Counter, Histogram, start_http_server

REQUESTS = Counter(
    "serendip_grpc_requests_total",
    "gRPC requests handled, by service method and status code.",
    ["method", "code"],
)
LATENCY = Histogram(
    "serendip_grpc_request_latency_seconds",
    "Wall time of gRPC requests, by service method and status code.",
    ["method", "code"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


@cache
def _series(method: str, code: str) -> tuple[Counter, Histogram]:
    """The labelled children of one method and code (``labels()`` is a lookup under a lock: done once)."""
    return REQUESTS.labels(method, code), LATENCY.labels(method, code)


def observe_request(method: str, code: str, seconds: float) -> None:
    """Record one finished request."""
    requests, latency = _series(method, code)
    requests.inc()
    latency.observe(seconds)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Expose /metrics over HTTP on ``host:port`` (a daemon thread)."""
    start_http_server(port, addr=host)
