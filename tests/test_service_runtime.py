"""The shared runtime: one place maps exceptions to status codes, counts requests, honours deadlines."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from serendip.service.background import BackgroundService
from serendip.service.deadlines import Deadline
from serendip.service.errors import NotFoundError, UnavailableError
from serendip.service.server import GrpcService, ServiceBinding
from serendip.v1 import retriever_pb2, retriever_pb2_grpc
from triton_models.launcher import free_port

RETRIEVE_METHOD = "/serendip.v1.Retriever/Retrieve"


class ScriptedRetriever(retriever_pb2_grpc.RetrieverServicer):
    """Behaves according to the first cluster id, to exercise each error path."""

    async def Retrieve(self, request, context):
        behaviour = request.cluster_ids[0]
        if behaviour == "crash":
            raise RuntimeError("secret internal detail")
        if behaviour == "missing":
            raise NotFoundError("cluster_ids[0]", "unknown cluster 'missing'")
        if behaviour == "upstream-down":
            raise UnavailableError("model server 127.0.0.1:1 is unreachable")
        if behaviour == "slow":
            await asyncio.sleep(Deadline.of_call(context, default_s=10.0).remaining_s() + 1.0)
        return retriever_pb2.RetrieveResponse(items=[retriever_pb2.RetrievedItem(item_id="v1", score=1.0)])


@pytest.fixture(scope="module")
def scripted_address():
    binding = ServiceBinding(
        "serendip.v1.Retriever",
        lambda server: retriever_pb2_grpc.add_RetrieverServicer_to_server(ScriptedRetriever(), server),
    )
    with BackgroundService(GrpcService([binding])) as address:
        yield address


def _call(address: str, behaviour: str, timeout: float = 5.0) -> retriever_pb2.RetrieveResponse:
    with grpc.insecure_channel(address) as channel:
        return retriever_pb2_grpc.RetrieverStub(channel).Retrieve(
            retriever_pb2.RetrieveRequest(cluster_ids=[behaviour], k=1), timeout=timeout
        )


def _count(code: str) -> float:
    value = REGISTRY.get_sample_value("serendip_grpc_requests_total", {"method": RETRIEVE_METHOD, "code": code})
    return value or 0.0


@pytest.mark.parametrize(
    ("behaviour", "code", "detail"),
    [
        ("missing", grpc.StatusCode.NOT_FOUND, "cluster_ids[0]: unknown cluster 'missing'"),
        ("upstream-down", grpc.StatusCode.UNAVAILABLE, "model server 127.0.0.1:1 is unreachable"),
    ],
)
def test_domain_errors_map_to_their_status(scripted_address: str, behaviour: str, code, detail: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        _call(scripted_address, behaviour)
    assert caught.value.code() == code
    assert caught.value.details() == detail


def test_unexpected_exception_is_internal_without_traceback(scripted_address: str) -> None:
    before = _count("INTERNAL")
    with pytest.raises(grpc.RpcError) as caught:
        _call(scripted_address, "crash")
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "internal error (id " in caught.value.details()
    assert "secret" not in caught.value.details() and "Traceback" not in caught.value.details()
    assert _count("INTERNAL") == before + 1


def test_success_is_counted(scripted_address: str) -> None:
    before = _count("OK")
    assert _call(scripted_address, "fine").items[0].item_id == "v1"
    assert _count("OK") == before + 1


def test_deadline_is_honoured(scripted_address: str) -> None:
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        _call(scripted_address, "slow", timeout=0.3)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 3.0
    assert _call(scripted_address, "fine").items  # still serving


def test_planner_process_serves_then_stops_gracefully_on_sigterm(tmp_path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "planner", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        log = process.stderr.read()
        assert '"message": "serving"' in log and '"message": "stopped"' in log
        assert f'"address": "127.0.0.1:{port}"' in log
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
