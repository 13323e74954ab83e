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

from planner import metrics
from planner.admission import LiveAdmission
from planner.content import ContextContent, ItemStore
from planner.fallback import FallbackPolicy
from planner.live import LivePlan, MllmClient
from planner.plan_watcher import PlanTableWatcher
from serendip.core.cluster_tree import ClusterTree
from serendip.service.deadlines import Deadline
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

    live_max_in_flight: int = 8
    """At most this many LIVE runs at once; a miss beyond it is FALLBACK at once (bounded memory in a miss storm)."""
    live_prior_s: float = 0.25
    """LIVE latency assumed until the first LIVE run has been measured."""
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
        self.live = LiveAdmission(self.settings.live_max_in_flight, self.settings.live_prior_s)

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
        deadline: Deadline,
    ) -> PlanOutcome:
        """The best plan available before ``deadline``; never fails because Triton is down or slow.

        CACHE and FALLBACK cost microseconds; LIVE is tried only when admitted (see LiveAdmission) and is
        abandoned for FALLBACK when it has not answered by the deadline.
        """
        context_cluster = self.context_cluster(item_id)
        if context_cluster is None and request_content is None:
            raise NotFoundError("context_item.item_id", f"unknown item {item_id!r} and no context_content given")
        recent = self.recent_clusters(history_item_ids)
        table = self.plans.table if self.plans else None
        cached = [Planned(c.cluster_id, c.score, c.reasoning) for c in table.get(item_id)] if table else []
        if cached:
            metrics.PLANS.labels(Source.CACHE.name).inc()
            return PlanOutcome(demote_recent(cached, recent, n), Source.CACHE, table.version, context_cluster)
        candidates = self.tree.siblings(context_cluster, self.delta) if context_cluster else None
        live = await self._live(item_id, request_content, candidates, recent, n, deadline)
        if live is not None:
            metrics.PLANS.labels(Source.LIVE.name).inc()
            return PlanOutcome(live[0], Source.LIVE, live[1], context_cluster)
        metrics.PLANS.labels(Source.FALLBACK.name).inc()
        ranked = [Planned(c.cluster_id, c.score) for c in self.fallback.for_cluster(context_cluster)]
        return PlanOutcome(demote_recent(ranked, recent, n), Source.FALLBACK, "fallback", context_cluster)

    async def _live(
        self,
        item_id: str,
        request_content: ContextContent | None,
        candidates: list[str] | None,
        recent: set[str],
        n: int,
        deadline: Deadline,
    ) -> tuple[list[Planned], str] | None:
        if self.mllm is None:
            return None
        if request_content is None and (self.items is None or item_id not in self.items):
            return None
        fresh = [c for c in candidates if c not in recent] if candidates else None
        allowed = fresh or candidates
        wanted = min(n, len(allowed)) if allowed else n
        content_key = _content_key(request_content) if request_content is not None else None
        key = (item_id, content_key, tuple(allowed or ()), wanted)
        refusal = self.live.refusal(key, deadline.remaining_s())
        metrics.LIVE_DECISIONS.labels(refusal or "admitted").inc()
        if refusal is not None:
            LOGGER.debug("live planning not admitted; falling back", extra={"item_id": item_id, "reason": refusal})
            return None
        try:
            plan = await self.live.wait(
                key,
                lambda: self._live_run(item_id, request_content, allowed, wanted),
                deadline.timeout_s(),
            )
        except TimeoutError:
            metrics.LIVE_FALLBACKS.labels("deadline").inc()
            LOGGER.info(
                "live planning slower than the request's deadline; falling back",
                extra={"item_id": item_id, "reason": "deadline", "live_estimate_s": self.live.latency.value_s},
            )
            return None
        except (UnavailableError, DeadlineExceededError) as error:
            metrics.LIVE_FALLBACKS.labels(type(error).__name__).inc()
            LOGGER.warning(
                "live planning failed; falling back",
                extra={"item_id": item_id, "reason": type(error).__name__, "error": str(error)},
            )
            return None
        finally:
            metrics.LIVE_IN_FLIGHT.set(len(self.live.runs))
            metrics.LIVE_LATENCY_ESTIMATE.set(self.live.latency.value_s)
        if plan is None:
            metrics.LIVE_FALLBACKS.labels("no_pixels").inc()
            return None
        ranked = [Planned(cluster_id, score, plan.reasoning) for cluster_id, score in plan.clusters]
        return demote_recent(ranked, recent, n), self.mllm.model_name

    async def _live_run(
        self, item_id: str, request_content: ContextContent | None, allowed: list[str] | None, wanted: int
    ) -> LivePlan | None:
        """One LIVE run, independent of any caller's deadline: the model's pixel needs, the pixels, the plan.

        None when the model needs pixels that neither the request nor the item store has.
        """
        mllm = self.mllm
        assert mllm is not None
        needs = await mllm.pixel_needs(self.settings.metadata_timeout_s)
        wants_pixels = bool(needs.frames or needs.thumbnail)
        content = request_content
        if content is None or wants_pixels and not content.has_pixels:
            if self.items is None or item_id not in self.items:
                return None
            content = await asyncio.to_thread(self.items.content, item_id, needs.frames, needs.thumbnail)
        if wants_pixels and not content.has_pixels:
            return None
        return await mllm.rank(item_id, content, allowed, wanted)


def _content_key(content: ContextContent) -> str:
    digest = hashlib.sha256(content.title.encode())
    for pixels in (content.frames, content.thumbnail):
        if pixels is not None:
            digest.update(pixels.tobytes())
    return digest.hexdigest()
