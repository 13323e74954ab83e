"""The explorer's gRPC client: the Planner and the Retriever, called as any ranking stack calls them.

Every call carries a deadline. A failed call becomes a :class:`CallError` holding the status code and the
service's message, which the page shows as they are (the services' messages name the offending field and
never carry a traceback).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serendip.v1 import common_pb2, planner_pb2, planner_pb2_grpc, retriever_pb2, retriever_pb2_grpc

DEFAULT_DEADLINE_S = 5.0
"""Long enough for a LIVE plan of the CPU demo MLLM; the Planner answers FALLBACK rather than miss it."""


@dataclass(frozen=True)
class CallError(Exception):
    """A gRPC call that ended in a non-OK status."""

    rpc: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.rpc}: {self.code}: {self.message}"


@dataclass(frozen=True)
class UploadedContent:
    """Pixels and title of a video that is not (or not yet) in the catalogue."""

    frames_jpeg: tuple[bytes, ...]
    thumbnail_jpeg: bytes
    title: str

    @property
    def item_id(self) -> str:
        """A stable id for this content: the Planner plans an unknown id from its content."""
        digest = hashlib.sha256(self.title.encode())
        for frame in (*self.frames_jpeg, self.thumbnail_jpeg):
            digest.update(hashlib.sha256(frame).digest())
        return f"upload-{digest.hexdigest()[:12]}"

    def to_proto(self) -> common_pb2.VideoContent:
        """The request's ``context_content``."""
        return common_pb2.VideoContent(
            frames_jpeg=list(self.frames_jpeg), thumbnail_jpeg=self.thumbnail_jpeg, title=self.title
        )


def history_proto(item_ids: Sequence[str]) -> common_pb2.RecentHistory:
    """A recent history of these items, oldest first (no timestamps or satisfaction)."""
    return common_pb2.RecentHistory(events=[common_pb2.HistoryEvent(item_id=item_id) for item_id in item_ids])


def plan_request(
    context_item_id: str,
    history: Sequence[str] = (),
    num_clusters: int = 0,
    content: UploadedContent | None = None,
) -> planner_pb2.PlanRequest:
    """The explorer's Plan request (reasoning included)."""
    return planner_pb2.PlanRequest(
        context_item=common_pb2.ItemRef(item_id=context_item_id),
        context_content=content.to_proto() if content is not None else None,
        recent_history=history_proto(history),
        num_clusters=num_clusters,
        include_reasoning=True,
    )


def recommend_request(
    context_item_id: str,
    history: Sequence[str] = (),
    num_items: int = 12,
    num_clusters: int = 0,
    content: UploadedContent | None = None,
) -> planner_pb2.RecommendRequest:
    """The explorer's Recommend request."""
    return planner_pb2.RecommendRequest(
        context_item=common_pb2.ItemRef(item_id=context_item_id),
        context_content=content.to_proto() if content is not None else None,
        recent_history=history_proto(history),
        num_items=num_items,
        num_clusters=num_clusters,
    )


class ServiceClients:
    """One channel to the Planner and one to the Retriever (grpc.aio: open them on the serving event loop)."""

    def __init__(self, planner_address: str, retriever_address: str, deadline_s: float = DEFAULT_DEADLINE_S) -> None:
        self.planner_address = planner_address
        self.retriever_address = retriever_address
        self.deadline_s = deadline_s
        self._planner_channel = grpc.aio.insecure_channel(planner_address)
        self._retriever_channel = grpc.aio.insecure_channel(retriever_address)
        self.planner = planner_pb2_grpc.PlannerStub(self._planner_channel)
        self.retriever = retriever_pb2_grpc.RetrieverStub(self._retriever_channel)

    async def plan(self, request: planner_pb2.PlanRequest) -> planner_pb2.PlanResponse:
        """Planner.Plan; CallError on a non-OK status."""
        try:
            return await self.planner.Plan(request, timeout=self.deadline_s)
        except grpc.aio.AioRpcError as error:
            raise _call_error("Planner.Plan", error) from None

    async def recommend(self, request: planner_pb2.RecommendRequest) -> planner_pb2.RecommendResponse:
        """Planner.Recommend; CallError on a non-OK status."""
        try:
            return await self.planner.Recommend(request, timeout=self.deadline_s)
        except grpc.aio.AioRpcError as error:
            raise _call_error("Planner.Recommend", error) from None

    async def retrieve(self, request: retriever_pb2.RetrieveRequest) -> retriever_pb2.RetrieveResponse:
        """Retriever.Retrieve; CallError on a non-OK status."""
        try:
            return await self.retriever.Retrieve(request, timeout=self.deadline_s)
        except grpc.aio.AioRpcError as error:
            raise _call_error("Retriever.Retrieve", error) from None

    async def health(self) -> dict[str, str]:
        """grpc.health.v1 status of each service by name (a status code name when the check fails)."""
        statuses = {}
        for name, channel in (("Planner", self._planner_channel), ("Retriever", self._retriever_channel)):
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                statuses[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.aio.AioRpcError as error:
                statuses[name] = error.code().name
        return statuses

    async def close(self) -> None:
        """Close both channels."""
        await self._planner_channel.close()
        await self._retriever_channel.close()


def _call_error(rpc: str, error: grpc.aio.AioRpcError) -> CallError:
    return CallError(rpc, error.code().name, error.details() or "")
