"""The whole embedded pipeline at test size, run once per session through the jobs' own entry points."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from serendip.artifacts.curation import load_curation
from serendip.artifacts.model_repository import REPOSITORY_KIND
from serendip.artifacts.store import resolve_artifact
from serendip.jobs import build_tree, curate, make_world, train_mllm, train_sasrec
from triton_models import build_engines
from triton_models.launcher import TritonServer


@dataclass(frozen=True)
class Pipeline:
    """Artifact root and the version dirs the jobs published."""

    root: Path
    world: Path
    curation: Path
    mllm: Path
    sasrec: Path
    repository: Path


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """world (200 items) -> tree -> curation -> MLLM (a few steps) -> SASRec -> model repository."""
    root = tmp_path_factory.mktemp("artifacts")
    common = ["--artifacts", str(root), "--quiet"]
    world = make_world.main(["--items", "200", "--users", "300", "--branching", "2,2,3,2", "--seed", "7", *common])
    build_tree.main(["--world", str(world), *common])
    curation = curate.main(["--world", str(world), "--variants", "video_cot", "--frame-counts", "2", *common])
    mllm = train_mllm.main(
        ["--curation", str(curation), "--variant", "video_cot", "--frames", "2", "--steps", "4", "--batch-size", "4"]
        + ["--heldout-limit", "4", "--checkpoint-every", "4", *common]
    )
    sasrec = train_sasrec.main(["--data", str(world), "--epochs", "2", "--artifacts", str(root)])
    repository = build_engines.main(["--artifacts", str(root), "--mllm-queue-delay-us", "2000"])
    return Pipeline(root, world, curation, mllm, sasrec, repository)


@pytest.fixture(scope="session")
def pipeline_tree(pipeline: Pipeline):
    """The cluster tree the planner plans over (the curation's copy)."""
    return load_curation(pipeline.curation).tree


@pytest.fixture(scope="session")
def stack_triton(pipeline: Pipeline) -> Iterator[TritonServer]:
    """Real tritonserver serving mllm + seqrec from the built repository."""
    with TritonServer(resolve_artifact(pipeline.root, REPOSITORY_KIND)) as server:
        yield server


@dataclass(frozen=True)
class Stack:
    """Addresses of the running services and the planner object behind the Planner service."""

    planner_address: str
    retriever_address: str
    planner: object


@pytest.fixture(scope="session")
def stack(pipeline: Pipeline, stack_triton: TritonServer) -> Iterator[Stack]:
    """Retriever and Planner on loopback, wired to the real Triton and to each other."""
    from planner.loading import load_planner
    from planner.service import PlannerServicer, planner_binding
    from retriever.loading import load_retrieval_model
    from retriever.service import RetrieverServicer, retriever_binding
    from serendip.service.background import BackgroundService
    from serendip.service.server import GrpcService

    retrieval = load_retrieval_model(pipeline.root, pipeline.root, stack_triton.grpc_url)
    retriever = BackgroundService(GrpcService([retriever_binding(RetrieverServicer(retrieval))]))
    retriever_address = retriever.start()
    planner = load_planner(pipeline.curation, pipeline.root, pipeline.world, stack_triton.grpc_url, plans_poll_s=0.2)
    planner_service = BackgroundService(GrpcService([planner_binding(PlannerServicer(planner, retriever_address))]))
    planner_address = planner_service.start()
    watcher = planner_service.submit(planner.plans.watch())
    try:
        yield Stack(planner_address, retriever_address, planner)
    finally:
        watcher.cancel()
        planner_service.stop()
        retriever.stop()
