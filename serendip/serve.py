"""``python -m serendip.serve`` (``make serve``): tritonserver plus both gRPC services on loopback.

Serves the newest artifacts under ``--artifacts``: the ``model_repository`` built by ``make build-engines``
(Triton: ``mllm`` and ``seqrec``), ``sasrec`` + ``tree`` (Retriever), ``curation`` + ``plans`` + ``world``
(Planner). The Planner's clusters come from the tree its curation was made on and the Retriever's from the
``tree`` artifact: serving refuses to start when those are different trees. Runs until Ctrl-C or SIGTERM, then
stops the services gracefully and Triton with SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from planner.__main__ import DEFAULT_PORT as PLANNER_PORT
from planner.loading import load_planner
from planner.service import PlannerServicer, planner_binding
from retriever.__main__ import DEFAULT_PORT as RETRIEVER_PORT
from retriever.loading import load_retrieval_model
from retriever.service import RetrieverServicer, retriever_binding
from serendip.artifacts.curation import CURATION_KIND
from serendip.artifacts.model_repository import REPOSITORY_KIND
from serendip.artifacts.plans import PLANS_KIND
from serendip.artifacts.store import read_manifest, resolve_artifact
from serendip.artifacts.tree import TREE_KIND
from serendip.artifacts.world import WORLD_KIND
from serendip.core.errors import ArtifactError
from serendip.service.logs import configure_logging
from serendip.service.server import DEFAULT_HOST, GrpcService, serve_until_signalled
from triton_models.launcher import TritonServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m serendip.serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--artifacts", type=Path, default=Path("artifacts"), help="artifact root (default: %(default)s)"
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)")
    parser.add_argument("--planner-port", type=int, default=PLANNER_PORT, help="default: %(default)s")
    parser.add_argument("--retriever-port", type=int, default=RETRIEVER_PORT, help="default: %(default)s")
    parser.add_argument("--triton-port", type=int, default=0, help="Triton gRPC port; 0 picks a free one")
    parser.add_argument("--log-level", default="WARNING", help="default: %(default)s")
    return parser.parse_args(argv)


def check_same_tree(curation_dir: Path, tree_dir: Path) -> None:
    """Fail unless the curation (the Planner's clusters) was made on the tree version the Retriever serves."""
    curated_on = read_manifest(curation_dir).get("inputs", {}).get("tree", {})
    served = read_manifest(tree_dir)
    if curated_on.get("content_sha256") != served["content_sha256"]:
        raise ArtifactError(
            f"the Planner would plan clusters of tree {curated_on.get('version', '(not recorded)')} (curation "
            f"{curation_dir.name}) but the Retriever serves tree {served['version']}: cluster ids would not match; "
            f"re-run `make curate` (then train-mllm, build-engines, batch-plans) or serve matching artifacts"
        )


class Stack:
    """Triton plus the two services over one artifact root; start() then run(), stop() in any case."""

    def __init__(self, artifacts: Path, host: str, planner_port: int, retriever_port: int, triton_port: int = 0):
        self.artifacts = Path(artifacts)
        self.host = host
        self.triton = TritonServer(resolve_artifact(self.artifacts, REPOSITORY_KIND), host=host, grpc_port=triton_port)
        self.retriever_address = f"{host}:{retriever_port}"
        self.planner_port, self.retriever_port = planner_port, retriever_port

    def _optional(self, kind: str) -> Path | None:
        try:
            return resolve_artifact(self.artifacts, kind)
        except ArtifactError:
            return None

    def services(self) -> list[GrpcService]:
        """Both gRPC services, wired to Triton and to each other."""
        curation = resolve_artifact(self.artifacts, CURATION_KIND)
        check_same_tree(curation, resolve_artifact(self.artifacts, TREE_KIND))
        retrieval = load_retrieval_model(self.artifacts, self.artifacts, self.triton.grpc_url)
        planner = load_planner(
            curation,
            self.artifacts if self._optional(PLANS_KIND) else None,
            self._optional(WORLD_KIND),
            self.triton.grpc_url,
        )
        self.planner = planner
        return [
            GrpcService(
                [planner_binding(PlannerServicer(planner, self.retriever_address))],
                host=self.host,
                port=self.planner_port,
            ),
            GrpcService([retriever_binding(RetrieverServicer(retrieval))], host=self.host, port=self.retriever_port),
        ]

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT (Triton must already be started)."""
        services = self.services()
        print(f"Planner       grpc://{self.host}:{self.planner_port}", flush=True)
        print(f"Retriever     grpc://{self.retriever_address}", flush=True)
        print("Ctrl-C to stop.", flush=True)
        watchers = [self.planner.plans.watch()] if self.planner.plans else []
        await serve_until_signalled(services, background=watchers)


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted."""
    args = parse_args(argv)
    configure_logging(args.log_level)
    stack = Stack(args.artifacts, args.host, args.planner_port, args.retriever_port, args.triton_port)
    print(f"starting tritonserver on {stack.triton.model_repository} ...", flush=True)
    with stack.triton:
        print(f"tritonserver  grpc://{stack.triton.grpc_url}  (log: {stack.triton.log_path})", flush=True)
        asyncio.run(stack.run())


if __name__ == "__main__":
    main()
