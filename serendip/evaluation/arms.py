"""The arms of the offline A/B test, each called through the real services on loopback.

The arms talk to the stack ``serendip.stack.ServingStack`` starts (what ``make serve`` starts). The evaluation
serves no plan table, so every plan of the MLLM arms is LIVE (the MLLM on Triton) or, when the MLLM is
unavailable, FALLBACK; the source of every plan is logged.

Arms (paper §4.1 "Baseline"):

- :class:`ExploitationArm` — Retriever UNRESTRICTED: SASRec on the user's history (the control).
- :class:`ContextSimilarArm` — Retriever CONTEXT_SIMILAR: SASRec with the context item as the only history.
- :class:`BanditArm` — the neural-linear bandit picks a novel cluster, Retriever CLUSTER_RESTRICTED in it.
- :class:`PlannerArm` — Planner.Recommend: MLLM plan, then cluster-restricted retrieval (the treatment).
- :class:`OracleArm` — optional upper bound: the context's true affine cluster, then the same retrieval.
- :class:`RuledOracleArm` — optional: the best a context-only planner can serve under the Planner's recency rule.

Every arm excludes the request's history (context included) and returns ``k`` items.

On a *fresh-upload* context (an item newer than every model: in no log, tree, vocabulary or plan table) each
arm gets what it would really have: exploitation is unchanged (it reads only the history); context-similar
SASRec has no embedding for the context and serves the cold-start answer, the most popular items
(Retriever UNRESTRICTED with no history); the bandit sees content-free features (its clusters' prior, see
``bandit.py``); the Planner receives the upload's own frames, thumbnail and title as ``context_content``
(:func:`upload_content`), as an upload client sends them; the oracle maps the upload's true affine cluster.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import grpc
from PIL import Image
from tqdm import tqdm

from serendip.core.cluster_tree import ClusterTree
from serendip.core.frames import sample_frames
from serendip.core.recency import recent_items
from serendip.evaluation.bandit import ClusterBandit
from serendip.evaluation.replay import ArmSpec
from serendip.evaluation.simulator import EvaluationRequest, Slate
from serendip.v1 import common_pb2, planner_pb2, planner_pb2_grpc, retriever_pb2, retriever_pb2_grpc

Mode = retriever_pb2.RetrievalMode
DEFAULT_TIMEOUT_S = 120.0


def _history(request: EvaluationRequest) -> common_pb2.RecentHistory:
    return common_pb2.RecentHistory(events=[common_pb2.HistoryEvent(item_id=item) for item in request.history])


def _excluded(request: EvaluationRequest) -> list[str]:
    return sorted({*request.history, request.context_item_id})


class Arm(Protocol):
    """Something that recommends ``k`` items for a request through a gRPC service at ``address``."""

    spec: ArmSpec
    address: str

    async def slate(self, channel: grpc.aio.Channel, request: EvaluationRequest, k: int, timeout_s: float) -> Slate:
        """The arm's slate for ``request``."""
        ...


async def _retrieve(
    channel: grpc.aio.Channel, request: retriever_pb2.RetrieveRequest, timeout_s: float
) -> tuple[str, ...]:
    response = await retriever_pb2_grpc.RetrieverStub(channel).Retrieve(request, timeout=timeout_s)
    return tuple(item.item_id for item in response.items)


async def _cluster_slate(
    channel: grpc.aio.Channel, request: EvaluationRequest, cluster: str, k: int, timeout_s: float, source: str
) -> Slate:
    """Top-k of ``cluster`` by the user's history (Retriever CLUSTER_RESTRICTED), as planned by ``source``."""
    retrieve = retriever_pb2.RetrieveRequest(
        history=_history(request),
        cluster_ids=[cluster],
        k=k,
        exclude_item_ids=_excluded(request),
        mode=Mode.RETRIEVAL_MODE_CLUSTER_RESTRICTED,
    )
    return Slate(await _retrieve(channel, retrieve, timeout_s), (cluster,), source)


class ExploitationArm:
    """Control: SASRec on the user's history over the whole catalogue (Retriever UNRESTRICTED).

    ``target_reachable=True`` re-creates the SASRec artifact's evaluation protocol (history masked except the
    held-out target, which may be a re-consumption): a check of the serving path, never an arm.
    """

    def __init__(self, spec: ArmSpec, retriever_address: str, target_reachable: bool = False) -> None:
        self.spec, self.address, self.target_reachable = spec, retriever_address, target_reachable

    async def slate(self, channel: grpc.aio.Channel, request: EvaluationRequest, k: int, timeout_s: float) -> Slate:
        """Top-k by the user's SASRec embedding."""
        excluded = _excluded(request)
        if self.target_reachable:
            excluded = [item for item in excluded if item != request.heldout_item_id]
        retrieve = retriever_pb2.RetrieveRequest(
            history=_history(request), k=k, exclude_item_ids=excluded, mode=Mode.RETRIEVAL_MODE_UNRESTRICTED
        )
        return Slate(await _retrieve(channel, retrieve, timeout_s))


class ContextSimilarArm:
    """Exploration baseline: SASRec with the context item as the whole history (Retriever CONTEXT_SIMILAR).

    A context outside ``known_items`` (SASRec's vocabulary; None: every context is known) has no embedding:
    the arm serves the cold-start answer, the most popular items (Retriever UNRESTRICTED with no history).
    """

    def __init__(self, spec: ArmSpec, retriever_address: str, known_items: Collection[str] | None = None) -> None:
        self.spec, self.address, self.known_items = spec, retriever_address, known_items

    async def slate(self, channel: grpc.aio.Channel, request: EvaluationRequest, k: int, timeout_s: float) -> Slate:
        """Top-k items similar to the context (the most popular ones for an unknown context)."""
        if self.known_items is not None and request.context_item_id not in self.known_items:
            popular = retriever_pb2.RetrieveRequest(
                k=k, exclude_item_ids=_excluded(request), mode=Mode.RETRIEVAL_MODE_UNRESTRICTED
            )
            return Slate(await _retrieve(channel, popular, timeout_s), (), "COLD_START")
        retrieve = retriever_pb2.RetrieveRequest(
            context_item=common_pb2.ItemRef(item_id=request.context_item_id),
            k=k,
            exclude_item_ids=_excluded(request),
            mode=Mode.RETRIEVAL_MODE_CONTEXT_SIMILAR,
        )
        return Slate(await _retrieve(channel, retrieve, timeout_s))


class BanditArm:
    """Exploration baseline: the bandit's novel cluster, then SASRec on the history inside it."""

    def __init__(self, spec: ArmSpec, retriever_address: str, bandit: ClusterBandit) -> None:
        self.spec, self.address, self.bandit = spec, retriever_address, bandit

    async def slate(self, channel: grpc.aio.Channel, request: EvaluationRequest, k: int, timeout_s: float) -> Slate:
        """Top-k of the chosen cluster."""
        cluster = self.bandit.choose(request.context_item_id, request.history)
        return await _cluster_slate(channel, request, cluster, k, timeout_s, "BANDIT")


class PlannerArm:
    """Treatment: Planner.Recommend — the MLLM's serendipitous clusters, then the cluster-restricted Retriever.

    ``content_of[item]`` (optional) is sent as the request's ``context_content``: the pixels and title of an
    item the Planner's catalogue does not hold (a fresh upload).
    """

    def __init__(
        self,
        spec: ArmSpec,
        planner_address: str,
        num_clusters: int,
        content_of: Mapping[str, common_pb2.VideoContent] | None = None,
    ) -> None:
        self.spec, self.address, self.num_clusters = spec, planner_address, num_clusters
        self.content_of = content_of or {}

    async def slate(self, channel: grpc.aio.Channel, request: EvaluationRequest, k: int, timeout_s: float) -> Slate:
        """The Recommend answer's items, planned clusters and plan source."""
        recommend = planner_pb2.RecommendRequest(
            context_item=common_pb2.ItemRef(item_id=request.context_item_id),
            recent_history=_history(request),
            num_items=k,
            num_clusters=self.num_clusters,
            exclude_item_ids=_excluded(request),
            context_content=self.content_of.get(request.context_item_id),
        )
        response = await planner_pb2_grpc.PlannerStub(channel).Recommend(recommend, timeout=timeout_s)
        source = planner_pb2.PlanSource.Name(response.plan.source).removeprefix("PLAN_SOURCE_")
        clusters = tuple(planned.cluster.cluster_id for planned in response.plan.clusters)
        return Slate(tuple(item.item_id for item in response.items), clusters, source)


def _jpeg(pixels: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=92)  # type: ignore[arg-type]
    return buffer.getvalue()


def upload_content(
    video_path: str | os.PathLike[str] | None,
    thumbnail_path: str | os.PathLike[str] | None,
    title: str,
    num_frames: int,
) -> common_pb2.VideoContent:
    """What an upload client sends for a new video: ``num_frames`` frames uniformly sampled with the project's
    sampler (as the Planner samples catalogue videos), JPEG-encoded, the video's thumbnail and its title
    (only the title for an item without media)."""
    frames = sample_frames(video_path, num_frames).frames if video_path else []
    thumbnail = Path(thumbnail_path).read_bytes() if thumbnail_path else b""
    return common_pb2.VideoContent(
        frames_jpeg=[_jpeg(frame) for frame in frames], thumbnail_jpeg=thumbnail, title=title
    )


class _WarningCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.getMessage()}: {getattr(record, 'error', '')}".rstrip(": ")] += 1


@contextmanager
def planner_warnings() -> Iterator[Counter[str]]:
    """Count the Planner's warnings (LIVE planning falling back, with the error) instead of printing them."""
    logger, counter = logging.getLogger("planner"), _WarningCounter()
    logger.addHandler(counter)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield counter.counts
    finally:
        logger.removeHandler(counter)
        logger.propagate = propagate


class OracleArm:
    """Upper bound, simulation only: the context's true affine cluster (ground truth, mapped to the serving tree),
    then the same cluster-restricted retrieval as the Planner's. What a perfectly trained MLLM would reach."""

    def __init__(self, spec: ArmSpec, retriever_address: str, cluster_of_context: Mapping[str, str]) -> None:
        self.spec, self.address, self.cluster_of_context = spec, retriever_address, cluster_of_context

    async def slate(self, channel: grpc.aio.Channel, request: EvaluationRequest, k: int, timeout_s: float) -> Slate:
        """Top-k of the context's affine cluster by the user's history."""
        cluster = self.cluster_of_context[request.context_item_id]
        return await _cluster_slate(channel, request, cluster, k, timeout_s, "ORACLE")


class RuledOracleArm:
    """The ceiling of any context-only planner under the Planner's recency rule, simulation only: the context's
    good clusters first (ground truth), then its other siblings, those of the user's history (its last
    ``recent_window`` items when set) moved behind the rest, as ``planner.planning.demote_recent`` does."""

    def __init__(
        self,
        spec: ArmSpec,
        retriever_address: str,
        rankings: Mapping[str, Sequence[str]],
        tree: ClusterTree,
        level: int,
        recent_window: int | None = None,
    ) -> None:
        self.spec, self.address, self.rankings = spec, retriever_address, rankings
        self.tree, self.level, self.recent_window = tree, level, recent_window

    def choose(self, request: EvaluationRequest) -> str:
        """The first cluster of the context's ranking outside the recent history (the first at all when none is)."""
        ranking = self.rankings[request.context_item_id]
        recent = recent_items(request.history, self.recent_window)
        seen = {self.tree.node_of(item, self.level) for item in recent if item in self.tree}
        return next((cluster for cluster in ranking if cluster not in seen), ranking[0])

    async def slate(self, channel: grpc.aio.Channel, request: EvaluationRequest, k: int, timeout_s: float) -> Slate:
        """Top-k of the chosen cluster by the user's history."""
        cluster = self.choose(request)
        return await _cluster_slate(channel, request, cluster, k, timeout_s, "ORACLE")


def nominate(
    arm: Arm,
    requests: Sequence[EvaluationRequest],
    k: int,
    concurrency: int = 16,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    progress: bool = True,
) -> list[Slate]:
    """The arm's slate for every request, ``concurrency`` calls in flight (Triton batches them)."""

    async def run() -> list[Slate]:
        async with grpc.aio.insecure_channel(arm.address) as channel:
            in_flight = asyncio.Semaphore(concurrency)
            with tqdm(total=len(requests), desc=arm.spec.name, unit="req", disable=not progress) as bar:

                async def one(request: EvaluationRequest) -> Slate:
                    async with in_flight:
                        slate = await arm.slate(channel, request, k, timeout_s)
                    bar.update()
                    return slate

                return list(await asyncio.gather(*(one(request) for request in requests)))

    return asyncio.run(run())
