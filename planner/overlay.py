"""The Planner's overlay plan table in memory, backed by the durable ``overlay`` store of the served MLLM.

Read after the batch plan table; written by nearline batches and by LIVE runs. A write reaches the disk (one
durable segment) before it becomes visible, so whatever a client was served from the overlay survives a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from planner import metrics
from serendip.artifacts.overlay import OverlayStore
from serendip.artifacts.plans import PLAN_COLUMNS, CachedCluster, plans_by_item, plans_from_rows


class OverlayPlans:
    """item id -> clusters best first, for the items planned since the batch table."""

    def __init__(self, store: OverlayStore) -> None:
        self.store = store
        self.version = f"overlay-{store.mllm_sha256[:16]}"
        self.plans: dict[str, list[CachedCluster]] = plans_by_item(store.read())
        metrics.OVERLAY_ITEMS.set(len(self.plans))

    def __len__(self) -> int:
        return len(self.plans)

    def get(self, item_id: str) -> list[CachedCluster]:
        """The item's plan (empty when the overlay has none)."""
        return self.plans.get(item_id, [])

    def _append(self, rows: Sequence[dict[str, Any]]) -> None:
        self.store.append(rows)
        self.store.compact()

    async def put(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write ``rows`` (PLAN_COLUMNS) durably as one segment, then serve them."""
        await asyncio.to_thread(self._append, rows)
        self.plans.update(plans_from_rows(tuple(row[column] for column in PLAN_COLUMNS) for row in rows))
        metrics.OVERLAY_ITEMS.set(len(self.plans))
