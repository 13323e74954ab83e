"""The load generator's garbage collector, paused while it measures."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Freeze what exists and collect nothing until the block ends: the load generator's own collections (tens of
    milliseconds with a large request mix in memory) must not show up as the server's latency."""
    was_enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
