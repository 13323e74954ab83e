"""Domain errors raised by service handlers; the service guard maps each to one gRPC code.

Handlers never build status codes by hand: they raise one of these and
``serendip.service.guard`` aborts the call with ``grpc_code``.
"""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """Base class: an error whose message is safe to return to the caller."""

    grpc_code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class InvalidArgumentError(ServiceError):
    """A request field is malformed; the message starts with the field's path."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class NotFoundError(ServiceError):
    """A referenced id (item, cluster) does not exist."""

    grpc_code = grpc.StatusCode.NOT_FOUND

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class FailedPreconditionError(ServiceError):
    """The service cannot answer in its current state (e.g. no model or artifacts loaded)."""

    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class UnavailableError(ServiceError):
    """An upstream dependency (Triton) is unreachable; the caller may retry."""

    grpc_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(ServiceError):
    """Too little of the caller's deadline is left to do the work."""

    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED


class ResourceExhaustedError(ServiceError):
    """The request is too large or the service is overloaded."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
