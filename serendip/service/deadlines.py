"""One absolute deadline per request, taken from the caller's gRPC deadline and consumed by every await.

A handler builds a :class:`Deadline` once, on arrival, and passes it down; each upstream call asks it for
``timeout_s()`` (what is left, optionally capped), so time spent in earlier steps is never granted twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc

from serendip.service.errors import DeadlineExceededError


@dataclass(frozen=True)
class Deadline:
    """A point on the monotonic clock by which the answer must be sent."""

    expires_at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now."""
        return cls(time.monotonic() + seconds)

    @classmethod
    def of_call(cls, context: grpc.aio.ServicerContext, default_s: float) -> Deadline:
        """The caller's deadline, or ``default_s`` from now when it set none.

        Raises DeadlineExceededError only when the deadline had already passed on arrival.
        """
        remaining = context.time_remaining()
        if remaining is None:
            return cls.after(default_s)
        if remaining <= 0:
            raise DeadlineExceededError("the request's deadline had passed when it arrived")
        return cls.after(remaining)

    def remaining_s(self) -> float:
        """Seconds left (negative once passed)."""
        return self.expires_at - time.monotonic()

    def earlier_by(self, seconds: float) -> Deadline:
        """This deadline moved ``seconds`` earlier: what a step gets when later steps need ``seconds``."""
        return Deadline(self.expires_at - seconds)

    def timeout_s(self, cap_s: float | None = None) -> float:
        """Seconds the next await may take: what is left, at most ``cap_s``.

        Raises DeadlineExceededError when nothing is left.
        """
        remaining = self.remaining_s()
        if remaining <= 0:
            raise DeadlineExceededError("the request's deadline passed before the upstream call")
        return remaining if cap_s is None else min(remaining, cap_s)
