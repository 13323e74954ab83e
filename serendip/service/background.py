"""Run a GrpcService on its own event loop in a background thread (tests, benchmarks, demos)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from serendip.service.server import GrpcService

T = TypeVar("T")


class BackgroundService:
    """Starts ``service`` in a daemon thread; ``stop()`` shuts it down gracefully."""

    def __init__(self, service: GrpcService) -> None:
        self.service = service
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc-service", daemon=True)

    def start(self, timeout_s: float = 30.0) -> str:
        """Start serving and return the bound ``host:port``."""
        self._thread.start()
        self.submit(self.service.start()).result(timeout_s)
        return self.service.address

    def stop(self, timeout_s: float = 30.0) -> None:
        """Graceful stop, then end the loop and join the thread."""
        if not self._thread.is_alive():
            return
        self.submit(self.service.stop()).result(timeout_s)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)
        self._loop.close()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coroutine`` on the service's event loop (e.g. a background watcher); cancel the future to stop it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
