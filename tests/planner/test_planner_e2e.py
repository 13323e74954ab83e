"""End to end on loopback: real tritonserver (mllm + seqrec), Retriever and Planner services."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image

from planner.loading import load_planner
from planner.service import PlannerServicer, planner_binding
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.overlay import read_overlay
from serendip.artifacts.plans import plan_rows, publish_plan_table
from serendip.artifacts.store import input_record, read_manifest
from serendip.service.background import BackgroundService
from serendip.service.server import GrpcService
from serendip.v1 import common_pb2, planner_pb2, planner_pb2_grpc
from triton_models.launcher import free_port

Source = planner_pb2.PlanSource


def _publish(pipeline, rows: list[dict], parameters: dict) -> Path:
    """A plan table as if planned with the pipeline's MLLM (the one the stack serves)."""
    return publish_plan_table(pipeline.root, rows, parameters, inputs={MLLM_KIND: input_record(pipeline.mllm)})


def _stub(address: str) -> planner_pb2_grpc.PlannerStub:
    return planner_pb2_grpc.PlannerStub(grpc.insecure_channel(address))


def _plan(stack, item_id: str, timeout: float = 20.0, **fields) -> planner_pb2.PlanResponse:
    request = planner_pb2.PlanRequest(context_item=common_pb2.ItemRef(item_id=item_id), **fields)
    return _stub(stack.planner_address).Plan(request, timeout=timeout)


def _history(*item_ids: str) -> common_pb2.RecentHistory:
    return common_pb2.RecentHistory(events=[common_pb2.HistoryEvent(item_id=i) for i in item_ids])


def _assert_serendipitous(tree, item_id: str, response: planner_pb2.PlanResponse) -> None:
    context_cluster = tree.node_of(item_id, 3)
    assert response.context_cluster.cluster_id == context_cluster
    for planned in response.clusters:
        cluster = planned.cluster.cluster_id
        assert cluster != context_cluster, "must differ at the planning level"
        assert tree.parent(cluster) == tree.parent(context_cluster), "must share the level-(l-δ) node"
        assert planned.cluster.level == 3 and planned.cluster.description == tree.description(cluster)


def _cached_item(stack, pipeline, tree) -> str:
    """An item the loaded plan table holds (a one-item table is published when none is loaded yet)."""
    table = stack.planner.plans.table
    if table is not None and len(table):
        return next(iter(table))
    item_id = tree.item_ids[-2]
    siblings = tree.siblings(tree.node_of(item_id, 3))
    _publish(pipeline, plan_rows(item_id, [(siblings[0], -1.0, "cached")]), {"run": "cached"})
    deadline = time.monotonic() + 10
    while _plan(stack, item_id).source != Source.PLAN_SOURCE_CACHE:
        assert time.monotonic() < deadline, "the plan table was never loaded"
        time.sleep(0.1)
    return item_id


def _uncached_item(stack, tree, offset: int = 0) -> str:
    table = stack.planner.plans.table
    items = [i for i in tree.item_ids if table is None or not table.get(i)]
    return items[offset]


def test_cache_miss_with_item_store_is_live_and_serendipitous(stack, pipeline_tree) -> None:
    item_id = _uncached_item(stack, pipeline_tree)
    response = _plan(stack, item_id, num_clusters=2, include_reasoning=True)
    assert response.source == Source.PLAN_SOURCE_LIVE
    assert len(response.clusters) == 2 and len({c.cluster.cluster_id for c in response.clusters}) == 2
    _assert_serendipitous(pipeline_tree, item_id, response)
    assert response.clusters[0].score >= response.clusters[1].score
    assert response.clusters[0].reasoning  # video chain of thought comes back when asked for


def test_identical_concurrent_live_requests_are_coalesced(stack, stack_triton, pipeline_tree) -> None:
    item_id = _uncached_item(stack, pipeline_tree, offset=1)

    def executions() -> int:
        with grpcclient.InferenceServerClient(stack_triton.grpc_url) as client:
            stats = client.get_inference_statistics("mllm", as_json=True)
        return int(stats["model_stats"][0].get("inference_count", 0))

    before = executions()
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: _plan(stack, item_id, num_clusters=2), range(8)))
    assert {r.source for r in responses} == {Source.PLAN_SOURCE_LIVE}
    assert len({tuple(c.cluster.cluster_id for c in r.clusters) for r in responses}) == 1
    assert executions() - before == 1


def test_recent_history_clusters_are_demoted(stack, pipeline_tree) -> None:
    item_id = _uncached_item(stack, pipeline_tree, offset=2)
    first = _plan(stack, item_id, num_clusters=1).clusters[0].cluster.cluster_id
    consumed = pipeline_tree.items_in(first)[0]
    again = _plan(stack, item_id, num_clusters=1, recent_history=_history(consumed))
    assert again.clusters[0].cluster.cluster_id != first


def test_plan_table_hot_reload_under_load(stack, pipeline, pipeline_tree) -> None:
    item_id = pipeline_tree.item_ids[-1]
    siblings = pipeline_tree.siblings(pipeline_tree.node_of(item_id, 3))
    first = _publish(pipeline, plan_rows(item_id, [(siblings[0], -1.0, "first")]), {"run": 1})
    deadline = time.monotonic() + 10
    while _plan(stack, item_id).plan_version != first.name:
        assert time.monotonic() < deadline, "the first plan table was never loaded"
        time.sleep(0.1)
    second_rows = plan_rows(item_id, [(siblings[-1], -0.5, "second")])

    def hammer(_: int) -> planner_pb2.PlanResponse:
        return _plan(stack, item_id, num_clusters=1, timeout=5)

    with ThreadPoolExecutor(4) as pool:
        under_load = pool.map(hammer, range(400))
        second = _publish(pipeline, second_rows, {"run": 2})
        responses = list(under_load)
    assert {r.source for r in responses} == {Source.PLAN_SOURCE_CACHE}
    assert {r.plan_version for r in responses} <= {first.name, second.name}
    deadline = time.monotonic() + 10
    while (latest := _plan(stack, item_id, include_reasoning=True)).plan_version != second.name:
        assert time.monotonic() < deadline, "the second plan table was never picked up"
        time.sleep(0.1)
    assert latest.clusters[0].cluster.cluster_id == siblings[-1] and latest.clusters[0].reasoning == "second"


def test_recommend_retrieves_inside_the_planned_clusters(stack, pipeline_tree) -> None:
    item_id = _uncached_item(stack, pipeline_tree, offset=3)
    request = planner_pb2.RecommendRequest(
        context_item=common_pb2.ItemRef(item_id=item_id), num_items=6, num_clusters=2, recent_history=_history(item_id)
    )
    response = _stub(stack.planner_address).Recommend(request, timeout=20)
    assert response.retrieval_source == planner_pb2.RETRIEVAL_SOURCE_SEQUENCE_MODEL
    planned = {c.cluster.cluster_id for c in response.plan.clusters}
    assert response.items and len(response.items) <= 6
    for item in response.items:
        assert item.item_id != item_id
        assert [ref.level for ref in item.cluster_path] == [1, 2, 3]
        assert item.cluster_path[-1].cluster_id in planned
        assert pipeline_tree.node_of(item.item_id, 3) == item.cluster_path[-1].cluster_id
        assert item.reason.startswith("new to you")


def test_recommend_never_returns_items_of_the_history(stack, pipeline_tree) -> None:
    item_id = _uncached_item(stack, pipeline_tree, offset=9)
    context = common_pb2.ItemRef(item_id=item_id)
    stub = _stub(stack.planner_address)
    first = stub.Recommend(planner_pb2.RecommendRequest(context_item=context, num_items=6, num_clusters=50), timeout=20)
    seen = [item.item_id for item in first.items[:3]]
    again = stub.Recommend(
        planner_pb2.RecommendRequest(
            context_item=context, num_items=6, num_clusters=50, recent_history=_history(*seen)
        ),
        timeout=20,
    )
    assert seen and again.items
    assert not set(seen) & {item.item_id for item in again.items}


@pytest.mark.parametrize(
    ("fields", "code", "prefix"),
    [
        (
            {"context_item": common_pb2.ItemRef(item_id="no-such-item")},
            grpc.StatusCode.NOT_FOUND,
            "context_item.item_id:",
        ),
        (
            {"context_item": common_pb2.ItemRef(item_id="v0001"), "num_clusters": 99},
            grpc.StatusCode.INVALID_ARGUMENT,
            "num_clusters:",
        ),
        (
            {
                "context_item": common_pb2.ItemRef(item_id="v0001"),
                "context_content": common_pb2.VideoContent(thumbnail_jpeg=b"not a jpeg"),
            },
            grpc.StatusCode.INVALID_ARGUMENT,
            "context_content.thumbnail_jpeg:",
        ),
    ],
)
def test_bad_plan_requests(stack, fields, code, prefix) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        _stub(stack.planner_address).Plan(planner_pb2.PlanRequest(**fields), timeout=10)
    assert caught.value.code() == code and caught.value.details().startswith(prefix)


def test_triton_down_falls_back_within_deadline(stack, stack_triton, pipeline_tree) -> None:
    item_id = _uncached_item(stack, pipeline_tree, offset=4)
    stack_triton.stop()
    try:
        started = time.monotonic()
        response = _plan(stack, item_id, num_clusters=2, timeout=1.0)
        assert time.monotonic() - started < 1.0
        assert response.source == Source.PLAN_SOURCE_FALLBACK
        _assert_serendipitous(pipeline_tree, item_id, response)
        short = _plan(stack, item_id, num_clusters=2, timeout=0.1)  # too short for LIVE at all
        assert short.source == Source.PLAN_SOURCE_FALLBACK
    finally:
        stack_triton.start()


@pytest.mark.parametrize("deadline_s", [0.01, 0.02, 0.05])
def test_tight_deadlines_get_an_answer_not_deadline_exceeded(stack, pipeline, pipeline_tree, deadline_s) -> None:
    """The deadline contract: any deadline that leaves time for the cheap path gets CACHE or FALLBACK."""
    cached_item = _cached_item(stack, pipeline, pipeline_tree)
    assert _plan(stack, cached_item, timeout=deadline_s).source == Source.PLAN_SOURCE_CACHE
    uncached = _uncached_item(stack, pipeline_tree, offset=5)
    response = _plan(stack, uncached, num_clusters=2, timeout=deadline_s)
    assert response.source in (Source.PLAN_SOURCE_FALLBACK, Source.PLAN_SOURCE_LIVE)
    _assert_serendipitous(pipeline_tree, uncached, response)
    recommend = planner_pb2.RecommendRequest(context_item=common_pb2.ItemRef(item_id=cached_item), num_items=4)
    assert _stub(stack.planner_address).Recommend(recommend, timeout=deadline_s).items  # popular items at worst


def _until_cached(stack, item_id: str, timeout_s: float = 60.0, **fields) -> planner_pb2.PlanResponse:
    """Poll until the item's plan is a CACHE hit (an unseen item without content is NOT_FOUND until then)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            response = _plan(stack, item_id, timeout=1.0, **fields)
            if response.source == Source.PLAN_SOURCE_CACHE:
                return response
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND, error
        assert time.monotonic() < deadline, f"{item_id} was never planned nearline"
        time.sleep(0.2)


def test_a_miss_is_planned_nearline_and_hits_from_the_overlay(stack, pipeline, pipeline_tree) -> None:
    item_id = _uncached_item(stack, pipeline_tree, offset=7)
    first = _plan(stack, item_id, num_clusters=2, timeout=0.02)  # too short for LIVE: FALLBACK, and queued
    assert first.source == Source.PLAN_SOURCE_FALLBACK
    hit = _until_cached(stack, item_id, num_clusters=2, include_reasoning=True)
    assert hit.plan_version.startswith("overlay-") and hit.clusters[0].reasoning
    _assert_serendipitous(pipeline_tree, item_id, hit)
    on_disk = read_overlay(pipeline.root, read_manifest(pipeline.mllm)["content_sha256"])
    assert item_id in set(on_disk["item_id"])


def _jpeg_frames(count: int = 2, size: int = 64) -> list[bytes]:
    frames = []
    for index in range(count):
        buffer = io.BytesIO()
        Image.fromarray(np.full((size, size, 3), 40 * index + 30, dtype=np.uint8)).save(buffer, format="JPEG")
        frames.append(buffer.getvalue())
    return frames


def test_a_fresh_upload_sent_with_content_hits_later_without_it(stack) -> None:
    upload = common_pb2.VideoContent(frames_jpeg=_jpeg_frames(), title="a fresh upload nobody has seen")
    first = _plan(stack, "upload-0001", num_clusters=2, timeout=0.02, context_content=upload)
    assert first.source in (Source.PLAN_SOURCE_FALLBACK, Source.PLAN_SOURCE_LIVE)
    with pytest.raises(grpc.RpcError) as unknown:
        _plan(stack, "upload-never-sent", timeout=1.0)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    hit = _until_cached(stack, "upload-0001", num_clusters=2)  # no content this time
    assert hit.plan_version.startswith("overlay-") and len(hit.clusters) == 2


def test_recommend_without_a_retriever_in_time_returns_the_clusters_popular_items(pipeline, pipeline_tree) -> None:
    """A Retriever that cannot answer (here: nothing listens) costs the caller personalisation, not an error."""
    planner = load_planner(pipeline.curation, items_path=pipeline.world)
    servicer = PlannerServicer(planner, f"127.0.0.1:{free_port()}")
    with BackgroundService(GrpcService([planner_binding(servicer)])) as address:
        item_id = pipeline_tree.item_ids[8]
        consumed = pipeline_tree.items_in(pipeline_tree.node_of(item_id, 3))[:1]
        request = planner_pb2.RecommendRequest(
            context_item=common_pb2.ItemRef(item_id=item_id),
            num_items=6,
            num_clusters=2,
            recent_history=_history(*consumed),
        )
        response = _stub(address).Recommend(request, timeout=5)
    assert response.retrieval_source == planner_pb2.RETRIEVAL_SOURCE_POPULAR_IN_CLUSTER
    planned = [c.cluster.cluster_id for c in response.plan.clusters]
    assert response.items and len(response.items) <= 6
    for item in response.items:
        assert item.cluster_path[-1].cluster_id in planned and item.item_id not in {item_id, *consumed}
    impressions = planner.items.impressions
    first_cluster = [item for item in response.items if item.cluster_path[-1].cluster_id == planned[0]]
    scores = [impressions[item.item_id] for item in first_cluster]
    assert scores == sorted(scores, reverse=True), "most-watched first"
