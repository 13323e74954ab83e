"""Follow the plan table's ``LATEST`` and swap the loaded table in one reference assignment.

Requests in flight keep the version they started with; none is dropped. A version planned with another MLLM
than the one served (``expected_mllm_sha256``) is never loaded: the current table stays.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from serendip.artifacts.lineage import plans_mllm_sha256
from serendip.artifacts.plans import PlanTable
from serendip.artifacts.store import LATEST_NAME

LOGGER = logging.getLogger(__name__)


class PlanTableWatcher:
    """Holds the current PlanTable and reloads it when the kind directory's LATEST changes."""

    def __init__(self, kind_dir: Path, poll_s: float = 1.0, expected_mllm_sha256: str | None = None) -> None:
        self.kind_dir = Path(kind_dir)
        self.poll_s = poll_s
        self.expected_mllm_sha256 = expected_mllm_sha256
        self.table: PlanTable | None = None
        self._seen_latest: str | None = None

    def _latest(self) -> str | None:
        latest = self.kind_dir / LATEST_NAME
        return latest.read_text().strip() if latest.is_file() else None

    def reload_if_changed(self) -> bool:
        """Load the version LATEST names if it is new; True when the table was swapped."""
        latest = self._latest()
        if latest is None or latest == self._seen_latest:
            return False
        if self.expected_mllm_sha256 is not None:
            planned_with = plans_mllm_sha256(self.kind_dir / latest)
            if planned_with != self.expected_mllm_sha256:
                self._seen_latest = latest
                LOGGER.error(
                    "plan table not loaded: planned with another MLLM than the one served; run `make batch-plans`",
                    extra={"version": latest, "planned_with": planned_with, "served": self.expected_mllm_sha256},
                )
                return False
        table = PlanTable.load(self.kind_dir / latest)
        self.table, self._seen_latest = table, latest
        LOGGER.info("plan table loaded", extra={"version": table.version, "items": len(table)})
        return True

    async def watch(self) -> None:
        """Poll forever (cancel to stop); loading runs in a worker thread, off the event loop."""
        while True:
            try:
                await asyncio.to_thread(self.reload_if_changed)
            except Exception:  # a half-copied or corrupt version must not stop serving the current one
                LOGGER.exception("plan table reload failed; keeping the current version")
            await asyncio.sleep(self.poll_s)
