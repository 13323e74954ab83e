"""``bench.retriever_floor``, the benchmark's floor of a Retriever over Triton, really calls the seqrec model."""

from __future__ import annotations

import grpc
import tritonclient.grpc as triton_grpc

from bench.run import retriever_floor
from serendip.v1 import common_pb2, retriever_pb2, retriever_pb2_grpc
from triton_models.launcher import TritonServer


def _seqrec_requests(url: str) -> int:
    with triton_grpc.InferenceServerClient(url) as client:
        stats = client.get_inference_statistics("seqrec", as_json=True)["model_stats"][0]
    return int(stats.get("inference_count", 0))


def test_floor_answers_empty_retrieves_after_one_seqrec_inference_each(
    seqrec_triton: TritonServer, trained_sasrec
) -> None:
    artifact = trained_sasrec[2]
    history = common_pb2.RecentHistory(events=[common_pb2.HistoryEvent(item_id="anything") for _ in range(30)])
    request = retriever_pb2.RetrieveRequest(history=history, cluster_ids=["c"], k=10)
    before = _seqrec_requests(seqrec_triton.grpc_url)
    with retriever_floor(seqrec_triton.grpc_url, artifact.directory) as address:
        with grpc.insecure_channel(address) as channel:
            stub = retriever_pb2_grpc.RetrieverStub(channel)
            answers = [stub.Retrieve(request, timeout=30) for _ in range(3)]
    assert [(a.model_version, len(a.items)) for a in answers] == [("floor", 0)] * 3
    assert _seqrec_requests(seqrec_triton.grpc_url) - before == 3
