"""Planning policy: CACHE, then LIVE, then FALLBACK; recently consumed clusters demoted.

For a context item in cluster c (planning level l), the candidates are c's serendipitous siblings
(different node at l, same node at l - δ). Clusters of the user's recent history are moved behind
the others ("sensitive to the most recent user interactions"); they are only returned when fewer than
``n`` other candidates exist.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from planner.content import ContextContent, ItemStore
from planner.fallback import FallbackPolicy
from planner.live import Coalescer, MllmClient
from planner.plan_table import PlanTableWatcher
from serendip.data.cluster_tree import ClusterTree
from serendip.service.errors import DeadlineExceededError, NotFoundError, UnavailableError

LOGGER = logging.getLogger(__name__)


class Source(Enum):
    """Where a plan came from (mirrors serendip.v1.PlanSource)."""

    CACHE = 1
    LIVE = 2
    FALLBACK = 3


@dataclass(frozen=True)
class Planned:
    """One cluster of a plan."""

    cluster_id: str
    score: float
    reasoning: str = ""


@dataclass(frozen=True)
class PlanOutcome:
    """A plan with its provenance."""

    clusters: list[Planned]
    source: Source
    version: str
    context_cluster: str | None


@dataclass
class PlannerSettings:
    """Tunables of the policy."""

    live_min_budget_s: float = 0.25
    """Below this much remaining deadline a cache miss goes straight to FALLBACK."""
    metadata_timeout_s: float = 1.0


def demote_recent(clusters: Sequence[Planned], recent: set[str], n: int) -> list[Planned]:
    """The first ``n`` clusters, those in ``recent`` moved behind all others (order otherwise kept)."""
    fresh = [c for c in clusters if c.cluster_id not in recent]
    stale = [c for c in clusters if c.cluster_id in recent]
    return (fresh + stale)[:n]


class Planner:
    """Answers Plan requests from the plan table, the live MLLM, or the fallback policy."""

    def __init__(
        self,
        tree: ClusterTree,
        level: int,
        delta: int,
        fallback: FallbackPolicy,
        plans: PlanTableWatcher | None = None,
        mllm: MllmClient | None = None,
        items: ItemStore | None = None,
        settings: PlannerSettings | None = None,
    ) -> None:
        self.tree = tree
        self.level = level
        self.delta = delta
        self.fallback = fallback
        self.plans = plans
        self.mllm = mllm
        self.items = items
        self.settings = settings or PlannerSettings()
        self.coalescer = Coalescer()

    def context_cluster(self, item_id: str) -> str | None:
        """The item's planning-level cluster, None when the item is not in the tree."""
        return self.tree.node_of(item_id, self.level) if item_id in self.tree else None

    def recent_clusters(self, history_item_ids: Sequence[str]) -> set[str]:
        """Planning-level clusters of the known history items."""
        return {self.tree.node_of(i, self.level) for i in history_item_ids if i in self.tree}  # type: ignore[misc]

    async def plan(
        self,
        item_id: str,
        request_content: ContextContent | None,
        history_item_ids: Sequence[str],
        n: int,
        budget_s: float,
    ) -> PlanOutcome:
        """The best available plan within ``budget_s`` seconds; never fails because Triton is down."""
        context_cluster = self.context_cluster(item_id)
        if context_cluster is None and request_content is None:
            raise NotFoundError("context_item.item_id", f"unknown item {item_id!r} and no context_content given")
        recent = self.recent_clusters(history_item_ids)
        candidates = self.tree.siblings(context_cluster, self.delta) if context_cluster else None
        table = self.plans.table if self.plans else None
        cached = [Planned(c.cluster_id, c.score, c.reasoning) for c in table.get(item_id)] if table else []
        if cached:
            return PlanOutcome(demote_recent(cached, recent, n), Source.CACHE, table.version, context_cluster)
        live = await self._live(item_id, request_content, candidates, recent, n, budget_s)
        if live is not None:
            return PlanOutcome(live[0], Source.LIVE, live[1], context_cluster)
        ranked = [Planned(c.cluster_id, c.score) for c in self.fallback.for_cluster(context_cluster)]
        return PlanOutcome(demote_recent(ranked, recent, n), Source.FALLBACK, "fallback", context_cluster)

    async def _live(
        self,
        item_id: str,
        request_content: ContextContent | None,
        candidates: list[str] | None,
        recent: set[str],
        n: int,
        budget_s: float,
    ) -> tuple[list[Planned], str] | None:
        if self.mllm is None or budget_s < self.settings.live_min_budget_s:
            return None
        try:
            needs = await self.mllm.pixel_needs(min(budget_s, self.settings.metadata_timeout_s))
            content = request_content
            if content is None or (needs.frames or needs.thumbnail) and not content.has_pixels:
                if self.items is None or item_id not in self.items:
                    return None
                content = await asyncio.to_thread(self.items.content, item_id, needs.frames, needs.thumbnail)
            if (needs.frames or needs.thumbnail) and not content.has_pixels:
                return None
            fresh = [c for c in candidates if c not in recent] if candidates else None
            allowed = fresh or candidates
            wanted = min(n, len(allowed)) if allowed else n
            key = (item_id, _content_key(content), tuple(allowed or ()), wanted)
            plan = await self.coalescer.run(
                key,
                lambda: self.mllm.rank(item_id, content, allowed, wanted),
                budget_s,  # type: ignore[union-attr]
            )
        except (UnavailableError, DeadlineExceededError, TimeoutError) as error:
            LOGGER.warning("live planning unavailable; falling back", extra={"item_id": item_id, "error": str(error)})
            return None
        ranked = [Planned(cluster_id, score, plan.reasoning) for cluster_id, score in plan.clusters]
        return demote_recent(ranked, recent, n), self.mllm.model_name


def _content_key(content: ContextContent) -> str:
    digest = hashlib.sha256(content.title.encode())
    for pixels in (content.frames, content.thumbnail):
        if pixels is not None:
            digest.update(pixels.tobytes())
    return digest.hexdigest()
