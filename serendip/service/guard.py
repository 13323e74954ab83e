"""The one place where handler exceptions become gRPC status codes, and requests are measured.

Every unary-unary handler is wrapped once, when a servicer is registered (:class:`GuardedRegistry`), not per
call by a server interceptor: an aio interceptor costs a coroutine and a new method handler on every request.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence

import grpc
from google.protobuf.message import DecodeError

from serendip.service.errors import InvalidArgumentError, ServiceError
from serendip.service.metrics import observe_request

LOGGER = logging.getLogger(__name__)

UnaryHandler = Callable[[object, grpc.aio.ServicerContext], Awaitable[object]]


def guarded_handler(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """``handler`` with its errors mapped to status codes and its requests counted and timed.

    The caller never sees UNKNOWN or a traceback: request bytes that do not parse (e.g. invalid UTF-8 in a string
    field) are INVALID_ARGUMENT, a :class:`ServiceError` is its own code, anything else is INTERNAL with an error
    id that the server log carries too. Streaming handlers are returned unchanged.
    """
    if handler.unary_unary is None:
        return handler
    # Deserialise inside the guard: a parse failure in gRPC's own deserializer would be UNKNOWN.
    return grpc.unary_unary_rpc_method_handler(
        _guarded(method, handler.unary_unary, handler.request_deserializer),
        request_deserializer=None,
        response_serializer=handler.response_serializer,
    )


class _GuardedGenericHandler(grpc.GenericRpcHandler):
    """A generic handler whose method handlers are guarded (each once, on first use)."""

    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self._inner = inner
        self._guarded: dict[str, grpc.RpcMethodHandler | None] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if method not in self._guarded:
            handler = self._inner.service(handler_call_details)
            self._guarded[method] = guarded_handler(method, handler) if handler is not None else None
        return self._guarded[method]


class GuardedRegistry:
    """Stands in for a ``grpc.aio.Server`` when a generated ``add_*Servicer_to_server`` registers a servicer.

    Whatever it registers reaches the server with every unary-unary handler guarded.
    """

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        """Register ``handlers``, guarded."""
        self._server.add_generic_rpc_handlers([_GuardedGenericHandler(h) for h in handlers])

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]) -> None:
        """Register ``service``'s method handlers (gRPC's fast lookup path), guarded."""
        guarded = {name: guarded_handler(f"/{service}/{name}", h) for name, h in handlers.items()}
        self._server.add_registered_method_handlers(service, guarded)


def _parse(deserializer: Callable[[bytes], object] | None, raw: bytes) -> object:
    if deserializer is None:
        return raw
    try:
        return deserializer(raw)
    except DecodeError as error:
        raise InvalidArgumentError("request", f"cannot be parsed ({error})") from None


def _guarded(method: str, behaviour: UnaryHandler, deserializer: Callable[[bytes], object] | None) -> UnaryHandler:
    async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> object:
        started = time.perf_counter()
        try:
            response = await behaviour(_parse(deserializer, raw), context)
        except ServiceError as error:
            code, message = error.grpc_code, str(error)
            LOGGER.info("request rejected", extra={"method": method, "code": code.name, "detail": message})
        except (grpc.aio.AbortError, asyncio.CancelledError):
            observe_request(method, (context.code() or grpc.StatusCode.CANCELLED).name, time.perf_counter() - started)
            raise
        except Exception:
            code, error_id = grpc.StatusCode.INTERNAL, uuid.uuid4().hex[:12]
            message = f"internal error (id {error_id}); see the server log"
            LOGGER.exception("unhandled error", extra={"method": method, "error_id": error_id})
        else:
            observe_request(method, grpc.StatusCode.OK.name, time.perf_counter() - started)
            return response
        # Counted before aborting, so the metric is visible by the time the caller sees the status.
        observe_request(method, code.name, time.perf_counter() - started)
        await context.abort(code, message)

    return handle
