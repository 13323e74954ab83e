"""Honour the caller's gRPC deadline when calling upstream services."""

from __future__ import annotations

import grpc

from serendip.service.errors import DeadlineExceededError


def remaining_budget_s(context: grpc.aio.ServicerContext, default_s: float, reserve_s: float = 0.0) -> float:
    """Seconds available for upstream work: the caller's remaining time minus ``reserve_s`` (kept for
    the work after the upstream call), or ``default_s`` when the caller set no deadline.

    Raises DeadlineExceededError when nothing is left.
    """
    remaining = context.time_remaining()
    budget = default_s if remaining is None else remaining - reserve_s
    if budget <= 0:
        raise DeadlineExceededError("the request deadline leaves no time for upstream calls")
    return budget
