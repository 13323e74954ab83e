"""Command-line plumbing shared by the service entry points (``python -m planner``, ``-m retriever``)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from serendip.service.logs import configure_logging
from serendip.service.server import DEFAULT_HOST, GrpcService, ServiceBinding


def add_server_arguments(parser: argparse.ArgumentParser, default_port: int) -> None:
    """Add --host, --port, --metrics-port, --grace-s and --log-level."""
    group = parser.add_argument_group("server")
    group.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s, loopback only)")
    group.add_argument(
        "--port", type=int, default=default_port, help="gRPC port; 0 picks a free one (default: %(default)s)"
    )
    group.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port (default: off)"
    )
    group.add_argument(
        "--grace-s", type=float, default=5.0, help="seconds in-flight calls get on SIGTERM (default: %(default)s)"
    )
    group.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default: %(default)s)")


def run_service(bindings: Sequence[ServiceBinding], args: argparse.Namespace) -> None:
    """Configure JSON logging and serve ``bindings`` until SIGTERM/SIGINT."""
    configure_logging(args.log_level)
    service = GrpcService(
        bindings, host=args.host, port=args.port, grace_s=args.grace_s, metrics_port=args.metrics_port
    )
    asyncio.run(service.serve_until_signalled())
