"""The Planner servicer: validates requests, then plans (once artifacts exist)."""

from __future__ import annotations

import grpc

from planner.validation import validate_plan_request, validate_recommend_request
from serendip.service.errors import FailedPreconditionError
from serendip.service.server import ServiceBinding
from serendip.v1 import planner_pb2, planner_pb2_grpc

NO_ARTIFACTS = (
    "no model/artifacts loaded: this Planner build validates requests but has no plan table or MLLM to answer from yet"
)


class PlannerServicer(planner_pb2_grpc.PlannerServicer):
    """serendip.v1.Planner. Without loaded artifacts every valid call is FAILED_PRECONDITION."""

    async def Plan(
        self, request: planner_pb2.PlanRequest, context: grpc.aio.ServicerContext
    ) -> planner_pb2.PlanResponse:
        validate_plan_request(request)
        raise FailedPreconditionError(NO_ARTIFACTS)

    async def Recommend(
        self, request: planner_pb2.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> planner_pb2.RecommendResponse:
        validate_recommend_request(request)
        raise FailedPreconditionError(NO_ARTIFACTS)


def planner_binding(servicer: PlannerServicer) -> ServiceBinding:
    """Bind ``servicer`` as serendip.v1.Planner."""
    return ServiceBinding(
        full_name=planner_pb2.DESCRIPTOR.services_by_name["Planner"].full_name,
        add_to_server=lambda server: planner_pb2_grpc.add_PlannerServicer_to_server(servicer, server),
    )
