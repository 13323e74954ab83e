"""One timed request: the call signature every load loop drives, and how its outcome is named."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
from tritonclient.utils import InferenceServerException

from bench.load.stats import OK

Call = Callable[[float], Awaitable[object]]
"""An async request taking its deadline in seconds (passed on as the gRPC/Triton timeout)."""

DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"


def status_name(error: BaseException) -> str:
    """The gRPC status name of a failed call (``StatusCode.UNAVAILABLE`` → ``UNAVAILABLE``).

    Exceptions that are neither gRPC nor Triton errors are named by their class, so a harness bug shows
    up in the error table instead of being hidden.
    """
    if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        return error.code().name
    if isinstance(error, InferenceServerException):
        return (error.status() or "UNKNOWN").removeprefix("StatusCode.")
    if isinstance(error, TimeoutError):
        return DEADLINE_EXCEEDED
    return type(error).__name__


HANG_GUARD_S = 1.0
"""How long past its deadline a call may take before this side gives up on it: a guard against a hanging target,
not the deadline itself (gRPC enforces that; a local timer at the same instant would also count answers that
arrived in time but were read late by this busy event loop)."""


async def timed_call(call: Call, deadline_s: float) -> str:
    """Run ``call`` with ``deadline_s`` (a hanging target cannot stall a loop: see HANG_GUARD_S).

    Returns ``OK`` or the status name of the failure.
    """
    try:
        await asyncio.wait_for(call(deadline_s), deadline_s + HANG_GUARD_S)
    except Exception as error:  # every failure is counted by name, none ends the run
        return status_name(error)
    return OK
