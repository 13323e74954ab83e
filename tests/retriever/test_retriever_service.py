"""The Retriever service on loopback against the real tritonserver serving the trained seqrec model."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient

from retriever.cluster_index import ClusterIndex
from retriever.seqrec_client import SeqrecClient
from retriever.service import RetrievalModel, RetrieverServicer, retriever_binding
from serendip.artifacts.sasrec import left_pad
from serendip.core.cluster_tree import ClusterTree
from serendip.service.background import BackgroundService
from serendip.service.deadlines import Deadline
from serendip.service.errors import DeadlineExceededError
from serendip.service.server import GrpcService
from serendip.v1 import common_pb2, retriever_pb2, retriever_pb2_grpc
from triton_models.launcher import TritonServer

Mode = retriever_pb2.RetrievalMode


@pytest.fixture(scope="module")
def retriever_stub(trained_sasrec, cluster_tree: ClusterTree, seqrec_triton: TritonServer) -> Iterator:
    artifact = trained_sasrec[2]
    model = RetrievalModel(
        vocabulary=artifact.vocabulary,
        index=ClusterIndex.build(artifact, cluster_tree, level=3),
        max_len=artifact.config.max_len,
        client=SeqrecClient(seqrec_triton.grpc_url),
        version=artifact.version,
    )
    with BackgroundService(GrpcService([retriever_binding(RetrieverServicer(model))])) as address:
        with grpc.insecure_channel(address) as channel:
            yield retriever_pb2_grpc.RetrieverStub(channel)


def _history(*item_ids: str) -> common_pb2.RecentHistory:
    return common_pb2.RecentHistory(events=[common_pb2.HistoryEvent(item_id=i) for i in item_ids])


def _retrieve(stub, timeout: float = 5.0, **fields) -> retriever_pb2.RetrieveResponse:
    return stub.Retrieve(retriever_pb2.RetrieveRequest(**fields), timeout=timeout)


def test_triton_serves_the_exported_encoder(trained_sasrec, seqrec_triton: TritonServer) -> None:
    result, split, artifact = trained_sasrec
    history = np.asarray([left_pad(split.test[0].history, artifact.config.max_len)], dtype=np.int64)
    tensor = grpcclient.InferInput("HISTORY", list(history.shape), "INT64")
    tensor.set_data_from_numpy(history)
    with grpcclient.InferenceServerClient(seqrec_triton.grpc_url) as client:
        served = client.infer("seqrec", [tensor]).as_numpy("USER_EMBEDDING")
    with torch.no_grad():
        eager = result.model(torch.from_numpy(history)).numpy()
    np.testing.assert_allclose(served, eager, rtol=1e-4, atol=1e-4)


def test_client_spends_what_is_left_of_one_deadline(trained_sasrec, seqrec_triton: TritonServer) -> None:
    """A passed deadline fails before any call is made; a live one gets the embeddings."""
    config = trained_sasrec[2].config
    histories = np.zeros((2, config.max_len), dtype=np.int64)

    async def embed(deadline: Deadline) -> np.ndarray:
        client = SeqrecClient(seqrec_triton.grpc_url)
        try:
            return await client.user_embeddings(histories, deadline)
        finally:
            await client.close()

    with pytest.raises(DeadlineExceededError):
        asyncio.run(embed(Deadline.after(-1.0)))
    users = asyncio.run(embed(Deadline.after(5.0)))
    assert users.shape == (2, config.hidden) and users.dtype == np.float32


def test_concurrent_calls_ride_together_and_each_gets_its_own_rows(trained_sasrec, seqrec_triton: TritonServer) -> None:
    """Eight concurrent callers: fewer Triton requests than calls, and each caller the rows of its histories."""
    result, split, artifact = trained_sasrec
    histories = [
        np.asarray([left_pad(example.history, artifact.config.max_len)] * (1 + index % 3), dtype=np.int64)
        for index, example in enumerate(split.test[:8])
    ]

    def requests_served() -> int:
        with grpcclient.InferenceServerClient(seqrec_triton.grpc_url) as client:
            stats = client.get_inference_statistics("seqrec", as_json=True)["model_stats"][0]
        return int(stats["inference_stats"]["success"].get("count", 0))

    async def embed_all() -> list[np.ndarray]:
        client = SeqrecClient(seqrec_triton.grpc_url)
        try:
            return await asyncio.gather(*(client.user_embeddings(h, Deadline.after(10.0)) for h in histories))
        finally:
            await client.close()

    before = requests_served()
    users = asyncio.run(embed_all())
    assert requests_served() - before < len(histories)
    with torch.no_grad():
        for batch, got in zip(histories, users, strict=True):
            np.testing.assert_allclose(got, result.model(torch.from_numpy(batch)).numpy(), rtol=1e-4, atol=1e-4)


def test_only_items_of_requested_clusters(retriever_stub, cluster_tree: ClusterTree) -> None:
    clusters = ["c3-000", "c3-011"]
    reply = _retrieve(retriever_stub, history=_history("i00", "i03", "i06"), cluster_ids=clusters, k=6)
    assert len(reply.items) == 6 and not reply.cold_start and reply.unknown_history_items == 0
    for item in reply.items:
        assert item.cluster.cluster_id in clusters
        assert cluster_tree.node_of(item.item_id, 3) == item.cluster.cluster_id
        assert item.cluster.level == 3 and item.cluster.description == cluster_tree.description(item.cluster.cluster_id)
    scores = [item.score for item in reply.items]
    assert scores == sorted(scores, reverse=True)


def test_model_predicts_the_chain_inside_the_right_cluster(retriever_stub, cluster_tree: ClusterTree) -> None:
    # The chain rule is k -> k + 3, so after i00, i03, i06 comes i09, which lives in c3-001.
    reply = _retrieve(retriever_stub, history=_history("i00", "i03", "i06"), cluster_ids=["c3-001"], k=1)
    assert [item.item_id for item in reply.items] == ["i09"]


def test_exclusions_and_fewer_than_k(retriever_stub) -> None:
    reply = _retrieve(
        retriever_stub, history=_history("i00"), cluster_ids=["c3-001"], k=50, exclude_item_ids=["i05", "i09"]
    )
    assert sorted(item.item_id for item in reply.items) == ["i06", "i07", "i08"]


def test_history_items_are_excluded_unless_asked_for(retriever_stub) -> None:
    history = _history("i05", "i06")  # both in c3-001
    default = _retrieve(retriever_stub, history=history, cluster_ids=["c3-001"], k=50)
    assert sorted(item.item_id for item in default.items) == ["i07", "i08", "i09"]
    kept = _retrieve(retriever_stub, history=history, cluster_ids=["c3-001"], k=50, include_history_items=True)
    assert sorted(item.item_id for item in kept.items) == ["i05", "i06", "i07", "i08", "i09"]


def test_per_cluster_quota(retriever_stub) -> None:
    reply = _retrieve(
        retriever_stub, history=_history("i01"), cluster_ids=["c3-000", "c3-001", "c3-010"], k=9, per_cluster_quota=2
    )
    clusters = [item.cluster.cluster_id for item in reply.items]
    assert len(clusters) == 6 and all(clusters.count(c) == 2 for c in set(clusters))


def test_unknown_history_items_are_ignored_and_counted(retriever_stub) -> None:
    reply = _retrieve(retriever_stub, history=_history("nope", "i00", "nada"), cluster_ids=["c3-000"], k=2)
    assert reply.unknown_history_items == 2 and not reply.cold_start


def test_empty_history_is_cold_start_by_popularity(retriever_stub, trained_sasrec) -> None:
    artifact = trained_sasrec[2]
    reply = _retrieve(retriever_stub, cluster_ids=["c3-100"], k=5)
    assert reply.cold_start
    popularity = [artifact.popularity[artifact.vocabulary.index(item.item_id)] for item in reply.items]
    assert popularity == sorted(popularity, reverse=True)


def test_unrestricted_and_context_similar_modes(retriever_stub) -> None:
    everything = _retrieve(retriever_stub, history=_history("i00", "i03"), mode=Mode.RETRIEVAL_MODE_UNRESTRICTED, k=3)
    assert everything.items[0].item_id == "i06"
    similar = _retrieve(
        retriever_stub, context_item=common_pb2.ItemRef(item_id="i10"), mode=Mode.RETRIEVAL_MODE_CONTEXT_SIMILAR, k=1
    )
    assert similar.items[0].item_id == "i13"


@pytest.mark.parametrize(
    ("fields", "code", "prefix"),
    [
        ({"cluster_ids": ["c3-000", "c3-999"], "k": 3}, grpc.StatusCode.NOT_FOUND, "cluster_ids[1]:"),
        (
            {"context_item": common_pb2.ItemRef(item_id="ghost"), "mode": Mode.RETRIEVAL_MODE_CONTEXT_SIMILAR, "k": 3},
            grpc.StatusCode.NOT_FOUND,
            "context_item.item_id:",
        ),
        ({"cluster_ids": ["c3-000"], "k": -1}, grpc.StatusCode.INVALID_ARGUMENT, "k:"),
    ],
)
def test_bad_requests(retriever_stub, fields: dict, code: grpc.StatusCode, prefix: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        _retrieve(retriever_stub, **fields)
    assert caught.value.code() == code and caught.value.details().startswith(prefix)


def test_triton_down_is_unavailable_within_deadline_then_recovers(retriever_stub, seqrec_triton: TritonServer) -> None:
    request = {"history": _history("i00"), "cluster_ids": ["c3-001"], "k": 2}
    seqrec_triton.stop()
    try:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            _retrieve(retriever_stub, timeout=2.0, **request)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
        assert time.monotonic() - started < 2.5
        # The service itself stays up: cold-start requests need no Triton.
        assert _retrieve(retriever_stub, cluster_ids=["c3-001"], k=1).cold_start
    finally:
        seqrec_triton.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            assert _retrieve(retriever_stub, **request).items
            break
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
