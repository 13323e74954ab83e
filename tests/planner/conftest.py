"""The whole embedded pipeline at test size (the stage graph's SMALL preset), once per session, and its stack."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from serendip.artifacts.curation import CURATION_KIND, load_curation
from serendip.artifacts.lineage import resolve_bundle
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.model_repository import REPOSITORY_KIND
from serendip.artifacts.sasrec import SASREC_KIND
from serendip.artifacts.world import WORLD_KIND
from serendip.pipeline import SMALL, run_pipeline
from serendip.stack import ServingStack
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
    built = run_pipeline(root, SMALL, until=REPOSITORY_KIND, log=lambda _: None)
    return Pipeline(
        root, built[WORLD_KIND], built[CURATION_KIND], built[MLLM_KIND], built[SASREC_KIND], built[REPOSITORY_KIND]
    )


@pytest.fixture(scope="session")
def pipeline_tree(pipeline: Pipeline):
    """The cluster tree the planner plans over (the curation's copy)."""
    return load_curation(pipeline.curation).tree


@pytest.fixture(scope="session")
def serving(pipeline: Pipeline) -> Iterator[ServingStack]:
    """Real tritonserver (mllm + seqrec), Retriever and Planner on loopback, from the pipeline's lineage."""
    with ServingStack(resolve_bundle(pipeline.root), plans_poll_s=0.2) as stack:
        yield stack


@pytest.fixture(scope="session")
def stack_triton(serving: ServingStack) -> TritonServer:
    """The stack's tritonserver (tests stop and restart it)."""
    return serving.triton


@pytest.fixture(scope="session")
def stack(serving: ServingStack) -> ServingStack:
    """The running stack: ``planner_address``, ``retriever_address`` and the ``planner`` object."""
    return serving
