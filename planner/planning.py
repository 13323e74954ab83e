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
from collections import OrderedDict, deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from planner import metrics
from planner.admission import LiveAdmission
from planner.content import ContextContent, ItemStore
from planner.fallback import FallbackPolicy
from planner.live import LivePlan, MllmClient
from planner.nearline import MissQueue, NearlineWorker, QueuedMiss
from planner.overlay import OverlayPlans
from planner.placement import ContentPlacement
from planner.plan_watcher import PlanTableWatcher
from planner.popular import PopularInCluster
from serendip.artifacts.plans import DEFAULT_TOP_N, plan_rows
from serendip.core.cluster_tree import ClusterTree
from serendip.core.recency import recent_items
from serendip.service.deadlines import Deadline
from serendip.service.errors import DeadlineExceededError, NotFoundError, UnavailableError

LOGGER = logging.getLogger(__name__)


class Source(Enum):
    """Where a plan came from (mirrors serendip.v1.PlanSource)."""

    CACHE = 1
    LIVE = 2
    FALLBACK = 3


PLACEMENTS_KEPT = 10_000
"""Fresh-upload placements remembered (least recently asked for dropped first)."""


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
    plan_top_n: int = DEFAULT_TOP_N
    """Clusters a LIVE or nearline plan ranks (as the batch table keeps); requests take their first n."""
    nearline_batch_size: int = 16
    """Misses planned together by the nearline worker (one engine batch)."""
    nearline_rest_ratio: float = 1.0
    """After each nearline batch, rest this many times its duration (CPU-only: at most half of Triton's time
    goes to nearline planning, so serving keeps its tail latency; 0 where the MLLM has its own GPU)."""
    nearline_max_queued: int = 10_000
    nearline_max_queued_with_pixels: int = 256
    recent_window: int | None = None
    """Demote the clusters of the last this many history items (None: of the whole history sent; 0: none)."""


def demote_recent(clusters: Sequence[Planned], recent: set[str], n: int) -> list[Planned]:
    """The first ``n`` clusters, those in ``recent`` moved behind all others (order otherwise kept)."""
    fresh = [c for c in clusters if c.cluster_id not in recent]
    stale = [c for c in clusters if c.cluster_id in recent]
    return (fresh + stale)[:n]


def planning_clusters(tree: ClusterTree, level: int) -> dict[str, str]:
    """Item id -> its planning-level cluster, for every item of ``tree``."""
    return {item_id: cluster for item_id in tree.item_ids if (cluster := tree.node_of(item_id, level))}


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
        overlay: OverlayPlans | None = None,
        popular: PopularInCluster | None = None,
        placement: ContentPlacement | None = None,
        cluster_of: dict[str, str] | None = None,
    ) -> None:
        """``cluster_of``: :func:`planning_clusters` of ``tree`` and ``level`` when the caller has built it already."""
        self.tree = tree
        self.level = level
        self.delta = delta
        self.fallback = fallback
        self.plans = plans
        self.mllm = mllm
        self.items = items
        self.settings = settings or PlannerSettings()
        self.live = LiveAdmission(self.settings.live_max_in_flight, self.settings.live_prior_s)
        self.overlay = overlay
        self.popular = popular or PopularInCluster(tree, level, items.impressions if items else {})
        self.placement = placement
        self._placed: OrderedDict[str, str | None] = OrderedDict()
        """Upload id -> its placement, the most recent PLACEMENTS_KEPT (a miss is asked for again until planned)."""
        self.misses = (
            MissQueue(self.settings.nearline_max_queued, self.settings.nearline_max_queued_with_pixels)
            if overlay is not None and mllm is not None
            else None
        )
        self._cluster_of = cluster_of if cluster_of is not None else planning_clusters(tree, level)
        """Item id -> planning-level cluster: one dict lookup per history item on the hot path."""
        self._recent_sources: deque[bool] = deque(maxlen=1000)
        self._recent_hits = 0
        self._plans_counted = {source: metrics.PLANS.labels(source.name) for source in Source}
        metrics.CACHE_HIT_RATIO.set_function(self.recent_hit_ratio)
        self._background: set[asyncio.Task] = set()

    def context_cluster(self, item_id: str) -> str | None:
        """The item's planning-level cluster, None when the item is not in the tree."""
        return self._cluster_of.get(item_id)

    def placed_cluster(self, item_id: str, content: ContextContent | None) -> str | None:
        """The item's cluster, or for an item outside the tree the cluster its pixels or title place it in."""
        cluster = self._cluster_of.get(item_id)
        if cluster is not None or content is None or self.placement is None:
            return cluster
        if item_id in self._placed:  # an upload asked for again before it is planned: placed once
            self._placed.move_to_end(item_id)
            return self._placed[item_id]
        placed = self._placed[item_id] = self.placement.place(content)
        if len(self._placed) > PLACEMENTS_KEPT:
            self._placed.popitem(last=False)
        return placed

    def queued_content(self, item_id: str) -> ContextContent | None:
        """The content a miss waits for nearline planning with (None when none is queued)."""
        return self.misses.queued_content(item_id) if self.misses is not None else None

    def recent_clusters(self, history_item_ids: Sequence[str]) -> set[str]:
        """Planning-level clusters of the known history items (the last ``recent_window`` of them when set)."""
        cluster_of = self._cluster_of
        recent = recent_items(history_item_ids, self.settings.recent_window)
        return {cluster_of[i] for i in recent if i in cluster_of}

    def recent_hit_ratio(self) -> float:
        """Share of CACHE answers over the last 1,000 plans (0 before the first)."""
        return self._recent_hits / len(self._recent_sources) if self._recent_sources else 0.0

    def cached(self, item_id: str) -> tuple[list[Planned], str] | None:
        """The item's plan from the batch table, else from the overlay, with its version; None on a miss."""
        for table in (self.plans.table if self.plans else None, self.overlay):
            entries = table.get(item_id) if table is not None else None
            if entries:
                return [Planned(c.cluster_id, c.score, c.reasoning) for c in entries], table.version  # type: ignore[union-attr]
        return None

    async def plan(
        self,
        item_id: str,
        request_content: ContextContent | None,
        history_item_ids: Sequence[str],
        n: int,
        deadline: Deadline,
    ) -> PlanOutcome:
        """The best plan available before ``deadline``; never fails because Triton is down or slow.

        CACHE (batch table, then overlay) and FALLBACK cost microseconds. On a miss the item is queued for
        nearline planning, and LIVE is tried only when admitted (see LiveAdmission); a LIVE run that has not
        answered by the deadline is abandoned for FALLBACK (its result is still written to the overlay).
        """
        context_cluster = self.context_cluster(item_id)
        recent = self.recent_clusters(history_item_ids)
        cached = self.cached(item_id)
        if cached is not None:  # a fresh upload planned earlier from its content is a hit without content
            self._count(Source.CACHE)
            return PlanOutcome(demote_recent(cached[0], recent, n), Source.CACHE, cached[1], context_cluster)
        if context_cluster is None:
            if request_content is None:
                raise NotFoundError("context_item.item_id", f"unknown item {item_id!r} and no context_content given")
            context_cluster = self.placed_cluster(item_id, request_content)  # a fresh upload, placed by its content
        live = await self._live(item_id, request_content, context_cluster, deadline)
        if live is not None:
            self._count(Source.LIVE)
            return PlanOutcome(demote_recent(live[0], recent, n), Source.LIVE, live[1], context_cluster)
        self._count(Source.FALLBACK)
        ranked = [Planned(c.cluster_id, c.score) for c in self.fallback.for_cluster(context_cluster)]
        return PlanOutcome(demote_recent(ranked, recent, n), Source.FALLBACK, "fallback", context_cluster)

    def _count(self, source: Source) -> None:
        self._plans_counted[source].inc()
        hit = source is Source.CACHE
        recent = self._recent_sources
        if len(recent) == recent.maxlen:
            self._recent_hits -= recent[0]
        recent.append(hit)
        self._recent_hits += hit

    def _can_plan(self, item_id: str, request_content: ContextContent | None) -> bool:
        """True when a model is configured and there is something to show it."""
        known = self.items is not None and item_id in self.items
        return self.mllm is not None and (request_content is not None or known)

    async def _live(
        self, item_id: str, request_content: ContextContent | None, context_cluster: str | None, deadline: Deadline
    ) -> tuple[list[Planned], str] | None:
        if not self._can_plan(item_id, request_content):
            return None
        key = (item_id, _content_key(request_content) if request_content is not None else None)
        wait_s = deadline.remaining_s()
        refusal = self.live.refusal(key, wait_s)
        metrics.LIVE_DECISIONS.labels(refusal or "admitted").inc()
        if refusal is not None:
            if self.misses is not None:
                self.misses.offer(item_id, request_content)
            LOGGER.debug("live planning not admitted; falling back", extra={"item_id": item_id, "reason": refusal})
            return None
        try:
            ranked = await self.live.wait(
                key, lambda: self._live_run(item_id, request_content, context_cluster), max(wait_s, 0.0)
            )
        except TimeoutError:
            metrics.LIVE_FALLBACKS.labels("deadline").inc()
            LOGGER.info(
                "live planning slower than the request's deadline; falling back (its plan is still written back)",
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
        if not ranked:
            metrics.LIVE_FALLBACKS.labels("no_pixels").inc()
            return None
        return ranked, self.mllm.model_name  # type: ignore[union-attr]

    async def plan_with_model(
        self, item_id: str, request_content: ContextContent | None, context_cluster: str | None
    ) -> LivePlan | None:
        """The model's ranking of the item's serendipitous candidates (its top ``plan_top_n``), for any request.

        Independent of a caller's deadline and history (requests apply their own demotion), so the result can
        be written back. None when the model needs pixels that neither the request nor the item store has.
        """
        mllm = self.mllm
        assert mllm is not None
        needs = await mllm.pixel_needs(self.settings.metadata_timeout_s)
        wants_pixels = bool(needs.frames or needs.thumbnail)
        content = request_content
        if content is None or wants_pixels and not content.has_pixels:
            if self.items is None or item_id not in self.items:
                return None
            content = await self.items.content_off_loop(item_id, needs.frames, needs.thumbnail)
        if wants_pixels and not content.has_pixels:
            return None
        candidates = self.tree.siblings(context_cluster, self.delta) if context_cluster else None
        wanted = min(self.settings.plan_top_n, len(candidates)) if candidates else self.settings.plan_top_n
        return await mllm.rank(item_id, content, candidates, wanted)

    async def _live_run(
        self, item_id: str, request_content: ContextContent | None, context_cluster: str | None
    ) -> list[Planned]:
        """One LIVE run: plan with the model, write the plan back (in the background), return it ranked."""
        plan = await self.plan_with_model(item_id, request_content, context_cluster)
        if plan is None:
            return []
        if self.misses is not None:
            self.misses.discard(item_id)
        if self.overlay is not None:
            self._spawn(self.overlay.put(plan_rows(item_id, _with_reasoning(plan))))
        return [Planned(cluster_id, score, plan.reasoning) for cluster_id, score in plan.clusters]

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait (at most ``timeout_s``) for write-backs still under way: a graceful stop loses none of them."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout_s)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _plan_miss(self, miss: QueuedMiss) -> list[dict[str, Any]] | None:
        if self.cached(miss.item_id) is not None:
            return None  # planned meanwhile (a LIVE run or a new batch table)
        plan = await self.plan_with_model(miss.item_id, miss.content, self.placed_cluster(miss.item_id, miss.content))
        return plan_rows(miss.item_id, _with_reasoning(plan)) if plan is not None else None

    async def _write_nearline(self, rows: Sequence[dict[str, Any]]) -> None:
        assert self.overlay is not None
        await self.overlay.put(rows)
        metrics.NEARLINE_PLANNED.inc(len({row["item_id"] for row in rows}))

    def background_work(self) -> list[Coroutine[Any, Any, None]]:
        """What runs beside the service: the plan-table watcher and the nearline worker, where configured."""
        worker = self.nearline_worker()
        return [*([self.plans.watch()] if self.plans else []), *([worker.run()] if worker else [])]

    def nearline_worker(self) -> NearlineWorker | None:
        """The background worker that plans queued misses into the overlay (None without model or overlay)."""
        if self.misses is None or self.overlay is None or self.mllm is None:
            return None
        settings = self.settings
        return NearlineWorker(
            self.misses,
            self._plan_miss,
            self._write_nearline,
            settings.nearline_batch_size,
            rest_ratio=settings.nearline_rest_ratio,
        )


def _with_reasoning(plan: LivePlan) -> list[tuple[str, float, str]]:
    return [(cluster_id, score, plan.reasoning) for cluster_id, score in plan.clusters]


def _content_key(content: ContextContent) -> str:
    digest = hashlib.sha256(content.title.encode())
    for pixels in (content.frames, content.thumbnail):
        if pixels is not None:
            digest.update(pixels.tobytes())
    return digest.hexdigest()
