"""``python -m serendip.serve`` (``make serve``): tritonserver plus both gRPC services on loopback.

Serves one lineage (``serendip.artifacts.lineage``): the newest ``model_repository`` under ``--artifacts``
(or ``--repository``), the ``sasrec`` and ``mllm`` it was built from, the MLLM's curation and that
curation's tree and catalogue, and plan-table versions planned with that MLLM (hot-reloaded). When a newer
version of any of them exists than the one the repository descends from, serving refuses and names the
command that rebuilds what is stale. Runs until Ctrl-C or SIGTERM, then stops the services gracefully and
Triton with SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from threadpoolctl import threadpool_limits

from planner.__main__ import DEFAULT_PORT as PLANNER_PORT
from retriever.__main__ import DEFAULT_PORT as RETRIEVER_PORT
from retriever.__main__ import SEARCH_THREADS_HELP
from serendip.artifacts.lineage import resolve_bundle
from serendip.core.errors import ArtifactError
from serendip.service.logs import configure_logging
from serendip.service.server import DEFAULT_HOST
from serendip.stack import ServingStack


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
    parser.add_argument(
        "--repository",
        type=Path,
        help="serve this model_repository version and its lineage, even when newer artifacts exist",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)")
    parser.add_argument("--planner-port", type=int, default=PLANNER_PORT, help="default: %(default)s")
    parser.add_argument("--retriever-port", type=int, default=RETRIEVER_PORT, help="default: %(default)s")
    parser.add_argument("--triton-port", type=int, default=0, help="Triton gRPC port; 0 picks a free one")
    parser.add_argument("--search-threads", type=int, default=1, help=f"the Retriever's {SEARCH_THREADS_HELP}")
    parser.add_argument("--log-level", default="WARNING", help="default: %(default)s")
    args = parser.parse_args(argv)
    if args.search_threads < 1:
        parser.error(f"--search-threads must be at least 1, not {args.search_threads}")
    return args


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    stopping.wait()


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted."""
    args = parse_args(argv)
    configure_logging(args.log_level)
    try:
        bundle = resolve_bundle(args.artifacts, args.repository)
    except ArtifactError as error:
        sys.exit(f"serve: {error}")
    print(f"serving\n{bundle.describe()}", flush=True)
    stack = ServingStack(
        bundle,
        host=args.host,
        planner_port=args.planner_port,
        retriever_port=args.retriever_port,
        triton_port=args.triton_port,
    )
    with stack:
        threadpool_limits(limits=args.search_threads)  # the services run in this process; the indexes are loaded
        print(f"tritonserver  grpc://{stack.triton.grpc_url}  (log: {stack.triton.log_path})", flush=True)
        print(f"Planner       grpc://{stack.planner_address}", flush=True)
        print(f"Retriever     grpc://{stack.retriever_address}", flush=True)
        print("Ctrl-C to stop.", flush=True)
        wait_for_signal()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
