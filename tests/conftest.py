"""Fixtures that start real servers on loopback: tritonserver and the gRPC services."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Ray must never talk over the host's interface address here (see docs/platform.md).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from triton_models.echo import write_echo_model  # noqa: E402
from triton_models.launcher import TritonServer  # noqa: E402


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` skip, with the reason, where no CUDA device exists."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    if gpu_tests and not _cuda_available():
        skip = pytest.mark.skip(reason="needs a CUDA device (none here); run `make test-all` on a GPU node")
        for item in gpu_tests:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def echo_model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository holding only the trivial python-backend ``echo`` model."""
    repository = tmp_path_factory.mktemp("echo-repository")
    write_echo_model(repository, max_queue_delay_us=500)
    return repository


@pytest.fixture(scope="session")
def triton_echo_server(echo_model_repository: Path) -> Iterator[TritonServer]:
    """A real tritonserver on 127.0.0.1 serving the echo model; stopped after the session."""
    with TritonServer(echo_model_repository) as server:
        yield server


@pytest.fixture(scope="module")
def planner_address() -> Iterator[str]:
    """A Planner (no artifacts) served in-process on 127.0.0.1."""
    from planner.service import PlannerServicer, planner_binding
    from serendip.service.background import BackgroundService
    from serendip.service.server import GrpcService

    with BackgroundService(GrpcService([planner_binding(PlannerServicer())])) as address:
        yield address


@pytest.fixture(scope="module")
def retriever_address() -> Iterator[str]:
    """A Retriever (no model) served in-process on 127.0.0.1."""
    from retriever.service import RetrieverServicer, retriever_binding
    from serendip.service.background import BackgroundService
    from serendip.service.server import GrpcService

    with BackgroundService(GrpcService([retriever_binding(RetrieverServicer())])) as address:
        yield address
