"""``python -m planner``: run the Planner gRPC service on loopback."""

from __future__ import annotations

import argparse

from planner.service import PlannerServicer, planner_binding
from serendip.service.cli import add_server_arguments, run_service

DEFAULT_PORT = 50061


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m planner",
        description=(
            "serendip.v1.Planner: names interest clusters that are new to the viewer yet related to the "
            "context video (different node at the planning level, same node one level up). Exposes "
            "grpc.health.v1 and server reflection; binds loopback unless --host says otherwise."
        ),
    )
    add_server_arguments(parser, DEFAULT_PORT)
    args = parser.parse_args(argv)
    run_service([planner_binding(PlannerServicer())], args)


if __name__ == "__main__":
    main()
