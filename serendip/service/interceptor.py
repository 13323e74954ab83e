"""The one place where handler exceptions become gRPC status codes, and requests are measured."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf.message import DecodeError

from serendip.service.errors import InvalidArgumentError, ServiceError
from serendip.service.metrics import observe_request

LOGGER = logging.getLogger(__name__)

UnaryHandler = Callable[[object, grpc.aio.ServicerContext], Awaitable[object]]


class StatusInterceptor(grpc.aio.ServerInterceptor):
    """Wraps unary-unary handlers: ServiceError → its code, anything else → INTERNAL.

    The caller never sees UNKNOWN or a traceback: request bytes that do not parse (e.g. invalid
    UTF-8 in a string field) are INVALID_ARGUMENT, unexpected exceptions are logged with an error
    id and the status message carries only that id. Every request is counted and timed per method
    and status code.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        # Deserialise inside the guard: a parse failure in gRPC's own deserializer would be UNKNOWN.
        return grpc.unary_unary_rpc_method_handler(
            _guarded(handler_call_details.method, handler.unary_unary, handler.request_deserializer),
            request_deserializer=None,
            response_serializer=handler.response_serializer,
        )


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
