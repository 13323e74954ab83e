"""Server core shared by the Planner and Retriever: grpc.aio server with health, reflection, guarded handlers
(status mapping and metrics), loopback binding and graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from serendip.service.guard import GuardedRegistry
from serendip.service.metrics import serve_metrics

LOGGER = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ServiceBinding:
    """One servicer to expose: its full proto name and how to add it to a server."""

    full_name: str
    add_to_server: Callable[[grpc.aio.Server], None]
    """Registers the servicer, e.g. a generated ``add_*Servicer_to_server``; it is handed a
    :class:`GuardedRegistry`, so every unary handler it registers is guarded."""


class GrpcService:
    """A running grpc.aio server exposing ``bindings`` plus grpc.health.v1 and reflection."""

    def __init__(
        self,
        bindings: Sequence[ServiceBinding],
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        grace_s: float = 5.0,
        metrics_port: int | None = None,
    ) -> None:
        self.bindings = list(bindings)
        self.host = host
        self.requested_port = port
        self.grace_s = grace_s
        self.metrics_port = metrics_port
        self.port: int | None = None
        self.health = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        """``host:port`` the server is bound to (after start)."""
        if self.port is None:
            raise RuntimeError("server not started")
        return f"{self.host}:{self.port}"

    async def start(self) -> int:
        """Bind, start serving, mark every service SERVING and return the bound port."""
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        for binding in self.bindings:
            binding.add_to_server(GuardedRegistry(server))  # type: ignore[arg-type]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        service_names = [b.full_name for b in self.bindings]
        reflection.enable_server_reflection(
            [*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            server,
        )
        self.port = server.add_insecure_port(f"{self.host}:{self.requested_port}")
        if self.port == 0:
            raise OSError(f"could not bind {self.host}:{self.requested_port}")
        await server.start()
        self._server = server
        for name in ["", *service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self.metrics_port is not None:
            serve_metrics(self.metrics_port, self.host)
        LOGGER.info("serving", extra={"address": self.address, "services": service_names})
        return self.port

    async def stop(self) -> None:
        """Report NOT_SERVING, then let in-flight calls finish for up to ``grace_s``."""
        if self._server is None:
            return
        await self.health.enter_graceful_shutdown()
        await self._server.stop(self.grace_s)
        self._server = None
        LOGGER.info("stopped", extra={"address": f"{self.host}:{self.port}"})

    async def serve_until_signalled(self) -> None:
        """Start, then run until SIGTERM or SIGINT and shut down gracefully."""
        await serve_until_signalled([self])


async def serve_until_signalled(
    services: Sequence[GrpcService], background: Sequence[Coroutine[Any, Any, None]] = ()
) -> None:
    """Start every service and ``background`` task (e.g. a plan-table watcher), wait for SIGTERM or
    SIGINT, then cancel the tasks and stop the services gracefully."""
    for service in services:
        await service.start()
    tasks = [asyncio.create_task(coroutine) for coroutine in background]
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    try:
        await stop_requested.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*(service.stop() for service in services))
