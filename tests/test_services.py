"""Both gRPC services on loopback: health, reflection, and field-naming INVALID_ARGUMENT errors."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from serendip.v1 import common_pb2, planner_pb2, planner_pb2_grpc, retriever_pb2, retriever_pb2_grpc

RetrievalMode = retriever_pb2.RetrievalMode


def _history(*item_ids: str) -> common_pb2.RecentHistory:
    return common_pb2.RecentHistory(events=[common_pb2.HistoryEvent(item_id=i) for i in item_ids])


@pytest.mark.parametrize(
    ("address_fixture", "service_name"),
    [("planner_address", "serendip.v1.Planner"), ("retriever_address", "serendip.v1.Retriever")],
)
def test_health_and_reflection(request: pytest.FixtureRequest, address_fixture: str, service_name: str) -> None:
    address = request.getfixturevalue(address_fixture)
    assert address.startswith("127.0.0.1:")
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", service_name):
            reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {service_name, "grpc.health.v1.Health"} <= services


def _plan_error(address: str, request: planner_pb2.PlanRequest) -> grpc.RpcError:
    with grpc.insecure_channel(address) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            planner_pb2_grpc.PlannerStub(channel).Plan(request, timeout=5)
    return caught.value


@pytest.mark.parametrize(
    ("request_message", "field"),
    [
        (planner_pb2.PlanRequest(), "context_item.item_id"),
        (planner_pb2.PlanRequest(context_item=common_pb2.ItemRef(item_id=" v1")), "context_item.item_id"),
        (planner_pb2.PlanRequest(context_item=common_pb2.ItemRef(item_id="v1"), num_clusters=-2), "num_clusters"),
        (planner_pb2.PlanRequest(context_item=common_pb2.ItemRef(item_id="v1"), num_clusters=51), "num_clusters"),
        (
            planner_pb2.PlanRequest(context_item=common_pb2.ItemRef(item_id="v1"), recent_history=_history("a", "")),
            "recent_history.events[1].item_id",
        ),
        (
            planner_pb2.PlanRequest(
                context_item=common_pb2.ItemRef(item_id="v1"),
                recent_history=common_pb2.RecentHistory(
                    events=[common_pb2.HistoryEvent(item_id="a", satisfaction=1.5)]
                ),
            ),
            "recent_history.events[0].satisfaction",
        ),
        (
            planner_pb2.PlanRequest(
                context_item=common_pb2.ItemRef(item_id="v1"),
                context_content=common_pb2.VideoContent(frames_jpeg=[b"x"] * 9),
            ),
            "context_content.frames_jpeg",
        ),
    ],
)
def test_plan_rejects_malformed_requests(
    planner_address: str, request_message: planner_pb2.PlanRequest, field: str
) -> None:
    error = _plan_error(planner_address, request_message)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{field}:")


def test_plan_without_artifacts_is_an_honest_failed_precondition(planner_address: str) -> None:
    error = _plan_error(planner_address, planner_pb2.PlanRequest(context_item=common_pb2.ItemRef(item_id="v1")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no model/artifacts loaded" in error.details()


def test_recommend_names_num_items(planner_address: str) -> None:
    with grpc.insecure_channel(planner_address) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            planner_pb2_grpc.PlannerStub(channel).Recommend(
                planner_pb2.RecommendRequest(context_item=common_pb2.ItemRef(item_id="v1"), num_items=0), timeout=5
            )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("num_items:")


@pytest.mark.parametrize(
    ("request_message", "field"),
    [
        (retriever_pb2.RetrieveRequest(k=10), "cluster_ids"),
        (retriever_pb2.RetrieveRequest(cluster_ids=["c3-1"], k=0), "k"),
        (retriever_pb2.RetrieveRequest(cluster_ids=["c3-1"], k=1001), "k"),
        (retriever_pb2.RetrieveRequest(cluster_ids=["c3-1", "c3-1"], k=5), "cluster_ids"),
        (retriever_pb2.RetrieveRequest(cluster_ids=["c3-1", ""], k=5), "cluster_ids[1]"),
        (
            retriever_pb2.RetrieveRequest(mode=RetrievalMode.RETRIEVAL_MODE_UNRESTRICTED, cluster_ids=["c3-1"], k=5),
            "cluster_ids",
        ),
        (retriever_pb2.RetrieveRequest(mode=RetrievalMode.RETRIEVAL_MODE_CONTEXT_SIMILAR, k=5), "context_item.item_id"),
        (retriever_pb2.RetrieveRequest(cluster_ids=["c3-1"], k=5, per_cluster_quota=-1), "per_cluster_quota"),
        (retriever_pb2.RetrieveRequest(cluster_ids=["c3-1"], k=5, mode=99), "mode"),
    ],
)
def test_retrieve_rejects_malformed_requests(
    retriever_address: str, request_message: retriever_pb2.RetrieveRequest, field: str
) -> None:
    with grpc.insecure_channel(retriever_address) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            retriever_pb2_grpc.RetrieverStub(channel).Retrieve(request_message, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(f"{field}:")


def test_retrieve_without_model_is_an_honest_failed_precondition(retriever_address: str) -> None:
    with grpc.insecure_channel(retriever_address) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            retriever_pb2_grpc.RetrieverStub(channel).Retrieve(
                retriever_pb2.RetrieveRequest(cluster_ids=["c3-1"], k=5), timeout=5
            )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
