"""The system under test on loopback: ``serendip.stack`` with each service in its own process.

Each service runs as ``python -m retriever`` / ``python -m planner``, as in production, so the load
generator's event loop never shares a GIL with a server. Everything is stopped on exit.
"""

from __future__ import annotations

from pathlib import Path

from bench.load.targets import Endpoints
from serendip.artifacts.lineage import resolve_bundle
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.plans import PLANS_KIND, PlanTable, plan_rows, publish_plan_table
from serendip.artifacts.store import input_record, resolve_artifact
from serendip.core.errors import ArtifactError
from serendip.stack import ServingStack

HOST = "127.0.0.1"
SYNTHETIC_PLAN_CLUSTERS = 5


def has_artifact(root: Path, kind: str) -> bool:
    """True when ``root`` holds a published ``kind`` artifact."""
    try:
        resolve_artifact(root, kind)
    except (ArtifactError, FileNotFoundError):
        return False
    return True


def prepare_plan_table(
    artifacts: Path, scratch: Path, *, every: int = 1, use_published: bool = True
) -> tuple[Path, set[str]]:
    """A plans root for the Planner and the item ids it caches.

    The artifact root's own ``plans`` when published (and ``use_published``); otherwise a plan table written
    into ``scratch`` holding the fallback policy's ranking of every ``every``-th item of the tree (CACHE
    throughput does not depend on the plans' content; ``every=2`` leaves half the items to LIVE planning).
    """
    if use_published and has_artifact(artifacts, PLANS_KIND):
        return artifacts, set(PlanTable.load(artifacts))
    from planner.loading import load_planner

    bundle = resolve_bundle(artifacts)
    planner = load_planner(bundle.curation)
    cached = planner.tree.item_ids[::every]
    rows = []
    for item_id in cached:
        ranked = planner.fallback.for_cluster(planner.context_cluster(item_id))[:SYNTHETIC_PLAN_CLUSTERS]
        rows += plan_rows(item_id, [(c.cluster_id, c.score, None) for c in ranked])
    parameters = {"source": "bench: the fallback ranking as a plan table", "every": every}
    publish_plan_table(scratch, rows, parameters, inputs={MLLM_KIND: input_record(bundle.mllm)})
    return scratch, set(cached)


class LocalStack(ServingStack):
    """The artifact root's newest serving bundle, each service in its own process, as in production."""

    def __init__(
        self,
        artifacts: Path,
        work_dir: Path,
        plans_root: Path | None = None,
        nearline: bool = False,
        overlay_root: Path | None = None,
    ) -> None:
        super().__init__(
            resolve_bundle(artifacts),
            host=HOST,
            services_in="processes",
            plans=plans_root is not None,
            plans_root=plans_root,
            nearline=nearline,
            overlay_root=overlay_root,
            work_dir=work_dir,
        )

    @property
    def repository(self) -> Path:
        """The served model repository version."""
        return self.bundle.repository

    @property
    def endpoints(self) -> Endpoints:
        """Addresses of the running services."""
        return Endpoints(
            planner=self.planner_address or None, retriever=self.retriever_address or None, triton=self.triton.grpc_url
        )

    def start(self) -> LocalStack:
        """Start Triton, the Retriever and the Planner."""
        super().start()
        return self
