"""``python -m serendip.serve`` (``make serve``): tritonserver plus both gRPC services on loopback.

Runs until Ctrl-C or SIGTERM, then stops the services gracefully and the server with SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from planner.__main__ import DEFAULT_PORT as PLANNER_PORT
from planner.service import PlannerServicer, planner_binding
from retriever.__main__ import DEFAULT_PORT as RETRIEVER_PORT
from retriever.service import RetrieverServicer, retriever_binding
from serendip.service.logs import configure_logging
from serendip.service.server import DEFAULT_HOST, GrpcService, serve_until_signalled
from triton_models.launcher import TritonServer

LOGGER = logging.getLogger("serendip.serve")


def model_repository_path(artifacts: Path) -> Path:
    """Where ``make build-engines`` publishes the Triton model repository."""
    return artifacts / "model_repository"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m serendip.serve",
        description=(
            "Start tritonserver on the model repository built by `make build-engines`, then the Planner "
            "and Retriever gRPC services, all bound to loopback. Prints the addresses; Ctrl-C stops everything."
        ),
    )
    parser.add_argument(
        "--artifacts", type=Path, default=Path("artifacts"), help="artifact root (default: %(default)s)"
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)")
    parser.add_argument("--planner-port", type=int, default=PLANNER_PORT, help="default: %(default)s")
    parser.add_argument("--retriever-port", type=int, default=RETRIEVER_PORT, help="default: %(default)s")
    parser.add_argument("--triton-port", type=int, default=0, help="Triton gRPC port; 0 picks a free one")
    parser.add_argument("--log-level", default="INFO", help="default: %(default)s")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted."""
    args = parse_args(argv)
    configure_logging(args.log_level)
    repository = model_repository_path(args.artifacts)
    triton = None
    if repository.is_dir():
        triton = TritonServer(repository, host=args.host, grpc_port=args.triton_port).start()
        print(f"tritonserver  grpc://{triton.grpc_url}  (log: {triton.log_path})", flush=True)
    else:
        print(f"tritonserver  not started: no model repository at {repository} (run `make build-engines`)")
    services = [
        GrpcService([planner_binding(PlannerServicer())], host=args.host, port=args.planner_port),
        GrpcService([retriever_binding(RetrieverServicer())], host=args.host, port=args.retriever_port),
    ]
    print(f"Planner       grpc://{args.host}:{args.planner_port}", flush=True)
    print(f"Retriever     grpc://{args.host}:{args.retriever_port}", flush=True)
    print("Ctrl-C to stop.", flush=True)
    try:
        asyncio.run(serve_until_signalled(services))
    finally:
        if triton is not None:
            triton.stop()


if __name__ == "__main__":
    main()
