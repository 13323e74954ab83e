"""``python -m retriever``: run the Retriever gRPC service on loopback."""

from __future__ import annotations

import argparse

from retriever.service import RetrieverServicer, retriever_binding
from serendip.service.cli import add_server_arguments, run_service

DEFAULT_PORT = 50062


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m retriever",
        description=(
            "serendip.v1.Retriever: top-k items for a user history from a SASRec sequence model, "
            "restricted to the requested interest clusters. Exposes grpc.health.v1 and server "
            "reflection; binds loopback unless --host says otherwise."
        ),
    )
    add_server_arguments(parser, DEFAULT_PORT)
    args = parser.parse_args(argv)
    run_service([retriever_binding(RetrieverServicer())], args)


if __name__ == "__main__":
    main()
