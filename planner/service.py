"""The Planner servicer: Plan (CACHE | LIVE | FALLBACK) and Recommend (Plan, then Retriever)."""

from __future__ import annotations

import logging
import math
import time

import grpc

from planner.admission import LatencyEstimate
from planner.content import content_from_request
from planner.planning import Planner, PlanOutcome
from planner.validation import validate_plan_request, validate_recommend_request
from serendip.service.deadlines import Deadline
from serendip.service.errors import (
    FailedPreconditionError,
    NotFoundError,
)
from serendip.service.server import ServiceBinding
from serendip.v1 import common_pb2, planner_pb2, planner_pb2_grpc, retriever_pb2, retriever_pb2_grpc

LOGGER = logging.getLogger(__name__)
NO_ARTIFACTS = (
    "no model/artifacts loaded: start the Planner with --curation (cluster tree and fallback policy); "
    "see `python -m planner --help`"
)
DEFAULT_BUDGET_S = 2.0
"""The deadline assumed when the caller sets none."""
RETRIEVE_PRIOR_S = 0.01
"""Retriever latency Recommend keeps aside for its Retrieve call until one has been measured."""
PLAN_RESERVE_S = 0.003
PLAN_RESERVE_SHARE = 0.1
"""Plan keeps ``max(PLAN_RESERVE_S, PLAN_RESERVE_SHARE x its deadline)`` aside for answering FALLBACK should a
LIVE run not finish: a LIVE wait never eats the time the answer needs to get out."""
POPULAR_RESERVE_S = 0.005
POPULAR_RESERVE_SHARE = 0.2
"""Recommend keeps ``max(POPULAR_RESERVE_S, POPULAR_RESERVE_SHARE x its deadline)`` aside for answering with
popular items should the Retriever not answer: the slack a loaded host needs to get the answer out in time."""
RETRIEVE_PROBE_EVERY = 32
"""Recommend asks the Retriever at least once in this many requests, whatever the time left."""


class PlannerServicer(planner_pb2_grpc.PlannerServicer):
    """serendip.v1.Planner; without a Planner every valid call is FAILED_PRECONDITION."""

    def __init__(self, planner: Planner | None = None, retriever_address: str | None = None) -> None:
        self.planner = planner
        self.retriever_address = retriever_address
        self._retriever: retriever_pb2_grpc.RetrieverStub | None = None
        self.retrieve_latency = LatencyEstimate(RETRIEVE_PRIOR_S)
        self._requests = 0
        self._cluster_refs: dict[str, common_pb2.ClusterRef] = {}

    def _ready(self) -> Planner:
        if self.planner is None:
            raise FailedPreconditionError(NO_ARTIFACTS)
        return self.planner

    def _cluster_ref(self, cluster_id: str) -> common_pb2.ClusterRef:
        """The cluster's reference, built once per cluster (the tree never changes while serving)."""
        ref = self._cluster_refs.get(cluster_id)
        if ref is None:
            node = self._ready().tree.node(cluster_id)
            ref = common_pb2.ClusterRef(cluster_id=node.node_id, level=node.level, description=node.description)
            self._cluster_refs[cluster_id] = ref
        return ref

    async def _plan(self, request, history: list[str], n: int, deadline: Deadline) -> PlanOutcome:
        planner = self._ready()
        item_id = request.context_item.item_id
        # Decoding JPEGs costs milliseconds of this loop: done only when the item has to be planned and its
        # pixels are not already waiting for nearline planning (an upload is asked for again until planned).
        must_plan = request.HasField("context_content") and planner.cached(item_id) is None
        content = None
        if must_plan:
            content = planner.queued_content(item_id) or content_from_request(request.context_content)
        return await planner.plan(item_id, content, history, n, deadline)

    def _plan_response(self, outcome: PlanOutcome, include_reasoning: bool) -> planner_pb2.PlanResponse:
        return planner_pb2.PlanResponse(
            clusters=[
                planner_pb2.PlannedCluster(
                    cluster=self._cluster_ref(c.cluster_id),
                    score=c.score,
                    reasoning=c.reasoning if include_reasoning else "",
                )
                for c in outcome.clusters
            ],
            source=outcome.source.value,
            plan_version=outcome.version,
            context_cluster=self._cluster_ref(outcome.context_cluster) if outcome.context_cluster else None,
        )

    async def Plan(
        self, request: planner_pb2.PlanRequest, context: grpc.aio.ServicerContext
    ) -> planner_pb2.PlanResponse:
        deadline = Deadline.of_call(context, DEFAULT_BUDGET_S)
        reserve_s = max(PLAN_RESERVE_S, PLAN_RESERVE_SHARE * deadline.remaining_s())
        n = validate_plan_request(request)
        history = [event.item_id for event in request.recent_history.events]
        outcome = await self._plan(request, history, n, deadline.earlier_by(reserve_s))
        return self._plan_response(outcome, request.include_reasoning)

    async def Recommend(
        self, request: planner_pb2.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> planner_pb2.RecommendResponse:
        deadline = Deadline.of_call(context, DEFAULT_BUDGET_S)
        reserve_s = max(POPULAR_RESERVE_S, POPULAR_RESERVE_SHARE * deadline.remaining_s())
        num_items, num_clusters = validate_recommend_request(request)
        if self.retriever_address is None:
            raise FailedPreconditionError("Recommend needs a Retriever: start the Planner with --retriever HOST:PORT")
        plan_deadline = deadline.earlier_by(reserve_s + self.retrieve_latency.value_s)
        history = [event.item_id for event in request.recent_history.events]
        outcome = await self._plan(request, history, num_clusters, plan_deadline)
        plan = self._plan_response(outcome, include_reasoning=True)
        planned = [c.cluster.cluster_id for c in plan.clusters]
        excluded = [*request.exclude_item_ids, request.context_item.item_id]
        retrieve = retriever_pb2.RetrieveRequest(  # the Retriever leaves the history's own items out itself
            history=request.recent_history,
            cluster_ids=planned,
            k=num_items,
            exclude_item_ids=self._exclusions_in(planned, excluded),
            per_cluster_quota=math.ceil(num_items / max(len(plan.clusters), 1)),
        )
        retrieved = await self._retrieve(retrieve, deadline.earlier_by(reserve_s))
        if retrieved is not None:
            source = planner_pb2.RETRIEVAL_SOURCE_SEQUENCE_MODEL
        else:
            source = planner_pb2.RETRIEVAL_SOURCE_POPULAR_IN_CLUSTER
            seen = {*excluded, *history}  # nothing seen comes back, as with the Retriever
            retrieved = self._popular(planned, num_items, retrieve.per_cluster_quota, seen)
        context_parent = self._context_parent(outcome)
        return planner_pb2.RecommendResponse(
            items=[self._recommended(item, context_parent) for item in retrieved],
            plan=plan,
            retrieval_source=source,
        )

    async def _retrieve(
        self, request: retriever_pb2.RetrieveRequest, deadline: Deadline
    ) -> list[retriever_pb2.RetrievedItem] | None:
        """The Retriever's items, or None when it cannot answer before ``deadline`` (or is unavailable).

        It is asked only when the time left covers its measured latency, and once in ``RETRIEVE_PROBE_EVERY``
        requests regardless (so an estimate inflated by a slow spell comes down again).
        """
        left = deadline.remaining_s()
        self._requests += 1
        probing = left < self.retrieve_latency.value_s
        if left <= 0 or (probing and self._requests % RETRIEVE_PROBE_EVERY):
            LOGGER.debug("retrieval skipped: too little time left", extra={"left_s": left})
            return None
        timeout_s = left / 2 if probing else left  # a probe that fails leaves its caller slack, not just the reserve
        started = time.monotonic()
        try:
            retrieved = await self._retriever_stub().Retrieve(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFoundError("plan", f"Retriever does not know a planned cluster: {error.details()}") from error
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and not probing:
                # "Slower than the estimate" raises it; a failed probe only says "slower than less than that".
                self.retrieve_latency.observe(time.monotonic() - started)
            LOGGER.info(
                "retrieval fell back to popular items",
                extra={"reason": error.code().name, "timeout_s": round(timeout_s, 4)},
            )
            return None
        self.retrieve_latency.observe(time.monotonic() - started)
        return list(retrieved.items)

    def _popular(
        self, cluster_ids: list[str], k: int, quota: int, excluded: set[str]
    ) -> list[retriever_pb2.RetrievedItem]:
        """The planned clusters' most-watched items, as retrieved items."""
        return [
            retriever_pb2.RetrievedItem(
                item_id=item.item_id, score=item.impressions, cluster=self._cluster_ref(item.cluster_id)
            )
            for item in self._ready().popular.top(cluster_ids, k, quota, excluded)
        ]

    def _exclusions_in(self, cluster_ids: list[str], item_ids: list[str]) -> list[str]:
        """The excluded items that could be retrieved at all: those inside the planned clusters, once each."""
        planner, clusters = self._ready(), set(cluster_ids)
        return [i for i in dict.fromkeys(item_ids) if planner.context_cluster(i) in clusters]

    def _context_parent(self, outcome: PlanOutcome) -> str:
        planner = self._ready()
        if outcome.context_cluster is None:
            return ""
        parent = planner.tree.parent(outcome.context_cluster)
        return planner.tree.description(parent) if parent else ""

    def _recommended(self, item: retriever_pb2.RetrievedItem, context_parent: str) -> planner_pb2.RecommendedItem:
        tree = self._ready().tree
        path = tree.path_of(item.item_id)[: self._ready().level] if item.item_id in tree else ()
        related = f", related through {context_parent!r}" if context_parent else ""
        return planner_pb2.RecommendedItem(
            item_id=item.item_id,
            score=item.score,
            cluster_path=[self._cluster_ref(node) for node in path],
            reason=f"new to you: {item.cluster.description!r}{related}",
        )

    def _retriever_stub(self) -> retriever_pb2_grpc.RetrieverStub:
        if self._retriever is None:
            channel = grpc.aio.insecure_channel(self.retriever_address)
            self._retriever = retriever_pb2_grpc.RetrieverStub(channel)
        return self._retriever


def planner_binding(servicer: PlannerServicer) -> ServiceBinding:
    """Bind ``servicer`` as serendip.v1.Planner."""
    return ServiceBinding(
        full_name=planner_pb2.DESCRIPTOR.services_by_name["Planner"].full_name,
        add_to_server=lambda server: planner_pb2_grpc.add_PlannerServicer_to_server(servicer, server),
    )
