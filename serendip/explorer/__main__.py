"""``python -m serendip.explorer`` (``make explore``): the plan explorer on http://127.0.0.1:PORT/.

Talks to a running Planner and Retriever over gRPC (``--planner``, ``--retriever``) and reads the artifact root
(``--artifacts``: catalogue, cluster tree, thumbnails, frame store) and the reports directory (``--reports``,
``--benchmarks``). With ``--start-stack``, when the Planner does not answer its health check, ``python -m
serendip.serve`` is started on the given ports as a child process and stopped with the explorer.

Pages: / (catalogue: search, cluster filter), /item/<id> (the plan and the recommendations for a context item,
with a recent-history picker), /upload (plan an mp4 or a JPEG), /tree, /reports.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import uvicorn
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serendip.core.errors import ArtifactError
from serendip.explorer.app import ExplorerSettings, create_app
from serendip.explorer.client import DEFAULT_DEADLINE_S

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8050
DEFAULT_PLANNER = "127.0.0.1:50061"
DEFAULT_RETRIEVER = "127.0.0.1:50062"
STACK_STARTUP_S = 600.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m serendip.explorer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--artifacts", type=Path, default=Path("artifacts"), help="artifact root (default: %(default)s)"
    )
    parser.add_argument("--planner", default=DEFAULT_PLANNER, help="Planner gRPC address (default: %(default)s)")
    parser.add_argument("--retriever", default=DEFAULT_RETRIEVER, help="Retriever gRPC address (default: %(default)s)")
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address the web page binds (default: %(default)s, loopback only)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="web page port (default: %(default)s)")
    parser.add_argument(
        "--reports", type=Path, default=Path("reports"), help="reports directory (default: %(default)s)"
    )
    parser.add_argument(
        "--benchmarks", type=Path, default=Path("BENCHMARKS.md"), help="benchmark summary (default: %(default)s)"
    )
    parser.add_argument(
        "--deadline-s",
        type=float,
        default=DEFAULT_DEADLINE_S,
        help="gRPC deadline of each call (default: %(default)s; a LIVE plan needs the MLLM's latency)",
    )
    parser.add_argument(
        "--start-stack",
        action="store_true",
        help="start `python -m serendip.serve --artifacts ARTIFACTS` on the --planner/--retriever ports "
        "when the Planner is not serving, and stop it on exit",
    )
    parser.add_argument("--log-level", default="WARNING", help="default: %(default)s")
    return parser.parse_args(argv)


def is_serving(address: str, timeout_s: float = 1.0) -> bool:
    """True when grpc.health.v1 at ``address`` answers SERVING."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def _port(address: str) -> str:
    return address.rsplit(":", 1)[1]


@contextlib.contextmanager
def serving_stack(args: argparse.Namespace) -> Iterator[None]:
    """Nothing when the Planner serves (or --start-stack is off); else ``serendip.serve`` as a child process."""
    if not args.start_stack or is_serving(args.planner):
        yield
        return
    command = [sys.executable, "-m", "serendip.serve", "--artifacts", str(args.artifacts)]
    command += ["--planner-port", _port(args.planner), "--retriever-port", _port(args.retriever)]
    print(f"explore: the Planner at {args.planner} is not serving; starting: {' '.join(command)}", flush=True)
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + STACK_STARTUP_S
        while not (is_serving(args.planner) and is_serving(args.retriever)):
            if process.poll() is not None:
                sys.exit(f"explore: serendip.serve exited with {process.returncode}")
            if time.monotonic() > deadline:
                sys.exit(f"explore: the stack was not serving after {STACK_STARTUP_S:.0f} s")
            time.sleep(0.5)
        yield
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(argv: list[str] | None = None) -> None:
    """Serve the explorer until Ctrl-C."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ExplorerSettings(
        artifacts=args.artifacts,
        planner_address=args.planner,
        retriever_address=args.retriever,
        reports=args.reports,
        benchmarks=args.benchmarks,
        deadline_s=args.deadline_s,
    )
    try:
        app = create_app(settings)
    except (ArtifactError, OSError) as error:
        sys.exit(f"explore: cannot read the artifact root {args.artifacts}: {error}")
    # uvicorn re-raises the signal that stopped it once it has shut down: SIGTERM must then unwind through
    # serving_stack (which stops the stack it started) instead of killing this process on the spot.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with serving_stack(args):
        print(f"serendip explorer on http://{args.host}:{args.port}/  (Ctrl-C to stop)", flush=True)
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower())


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)


if __name__ == "__main__":
    main()
