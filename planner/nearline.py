"""Nearline write-back: every cache miss is queued and planned in the background, so its next request hits.

:class:`MissQueue` is bounded, de-duplicated (one entry per item) and prioritised: the items requested most
often while waiting go first (ties: first seen first). Entries carrying request pixels (fresh uploads) are
bounded separately, since they are what costs memory. :class:`NearlineWorker` takes engine-sized batches
from the queue, plans them concurrently on Triton (its dynamic batcher runs them as one batch), writes each
batch to the overlay plan table as one durable segment, and only then makes them visible to the Planner.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from planner import metrics
from planner.content import ContextContent

LOGGER = logging.getLogger(__name__)


@dataclass
class QueuedMiss:
    """One item waiting to be planned."""

    item_id: str
    content: ContextContent | None
    requests: int = 1
    order: int = 0
    queued_at: float = field(default_factory=time.monotonic)


class MissQueue:
    """Cache misses waiting for nearline planning: bounded, de-duplicated, most-requested first."""

    def __init__(self, max_items: int = 10_000, max_with_content: int = 256) -> None:
        self.max_items = max_items
        self.max_with_content = max_with_content
        self._entries: dict[str, QueuedMiss] = {}
        self._with_content = 0
        self._order = itertools.count()
        self.dropped = 0
        self.ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._entries

    def offer(self, item_id: str, content: ContextContent | None) -> bool:
        """Queue a miss (or count one more request of a queued one); False when it was dropped for space."""
        queued = self._entries.get(item_id)
        if queued is not None:
            queued.requests += 1
            if queued.content is None and content is not None and self._with_content < self.max_with_content:
                queued.content, self._with_content = content, self._with_content + 1
            return True
        if len(self._entries) >= self.max_items:
            self.dropped += 1
            return False
        if content is not None and self._with_content >= self.max_with_content:
            self.dropped += 1
            return False
        self._entries[item_id] = QueuedMiss(item_id, content, order=next(self._order))
        self._with_content += content is not None
        self.ready.set()
        metrics.NEARLINE_QUEUE_DEPTH.set(len(self._entries))
        return True

    def take(self, count: int) -> list[QueuedMiss]:
        """Remove and return up to ``count`` entries, most requested first (ties: first queued first)."""
        chosen = sorted(self._entries.values(), key=lambda miss: (-miss.requests, miss.order))[:count]
        for miss in chosen:
            del self._entries[miss.item_id]
            self._with_content -= miss.content is not None
        if not self._entries:
            self.ready.clear()
        metrics.NEARLINE_QUEUE_DEPTH.set(len(self._entries))
        return chosen

    def queued_content(self, item_id: str) -> ContextContent | None:
        """The pixels and title an item is queued with (None when it is not queued, or queued without them)."""
        queued = self._entries.get(item_id)
        return queued.content if queued is not None else None

    def discard(self, item_id: str) -> None:
        """Forget an item that got planned another way (a LIVE run)."""
        miss = self._entries.pop(item_id, None)
        if miss is not None:
            self._with_content -= miss.content is not None
        metrics.NEARLINE_QUEUE_DEPTH.set(len(self._entries))


PlanOne = Callable[[QueuedMiss], Awaitable[list[dict[str, Any]] | None]]
WriteBatch = Callable[[Sequence[dict[str, Any]]], Awaitable[None]]


class NearlineWorker:
    """Drains a MissQueue in batches: plan concurrently, then write the batch back in one durable segment."""

    def __init__(
        self,
        queue: MissQueue,
        plan_one: PlanOne,
        write_batch: WriteBatch,
        batch_size: int = 16,
        pause_s: float = 0.5,
        rest_ratio: float = 0.0,
    ) -> None:
        self.queue = queue
        self.plan_one = plan_one
        self.write_batch = write_batch
        self.batch_size = batch_size
        self.pause_s = pause_s
        self.rest_ratio = rest_ratio
        """After a batch, rest this many times its duration: on a CPU-only box the MLLM shares the cores with
        serving, and resting keeps nearline planning from starving the requests it is there to speed up."""
        self.planned = 0
        self.failed = 0

    async def run_once(self) -> int:
        """Plan and write one batch (waiting for misses first); returns the items written."""
        await self.queue.ready.wait()
        batch = self.queue.take(self.batch_size)
        outcomes = await asyncio.gather(*(self.plan_one(miss) for miss in batch), return_exceptions=True)
        rows: list[dict[str, Any]] = []
        for miss, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException) or not outcome:
                self.failed += 1
                reason = type(outcome).__name__ if isinstance(outcome, BaseException) else "no plan (no pixels)"
                LOGGER.info("nearline planning failed", extra={"item_id": miss.item_id, "reason": reason})
                continue
            rows += outcome
        if rows:
            await self.write_batch(rows)
        written = len({row["item_id"] for row in rows})
        self.planned += written
        return written

    async def run(self) -> None:
        """Forever (cancel to stop). After a batch in which nothing could be planned (Triton down), pause."""
        while True:
            started = time.monotonic()
            try:
                written = await self.run_once()
            except Exception:  # a failed write keeps the worker alive; the next batch tries again
                LOGGER.exception("nearline batch failed")
                written = 0
            rest = self.rest_ratio * (time.monotonic() - started) if written else self.pause_s
            await asyncio.sleep(rest)
