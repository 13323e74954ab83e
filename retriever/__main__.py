"""``python -m retriever``: run the Retriever gRPC service on loopback."""

from __future__ import annotations

import argparse
import gc
from pathlib import Path

from threadpoolctl import threadpool_limits

from retriever.loading import load_retrieval_model
from retriever.service import RetrieverServicer, retriever_binding
from serendip.core.cluster_tree import DEFAULT_PLANNING_LEVEL
from serendip.service.cli import add_server_arguments, run_service

DEFAULT_PORT = 50062
SEARCH_THREADS_HELP = (
    "threads of each top-k: numpy's BLAS and FAISS's OpenMP (default: %(default)s). A top-k is one query from the "
    "serving loop: a cluster of a few hundred rows or an index search is not shortened by more threads, and their "
    "spin-waits take cores from the loop and Triton (docs/scale.md). Raise it only to rank clusters of tens of "
    "thousands of items exactly, without ANN indexes (28k-item clusters: about 15 %% more QPS with 2 threads on 2 "
    "cores)"
)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m retriever",
        description=(
            "serendip.v1.Retriever: top-k items for a user history from a SASRec sequence model served by "
            "Triton, restricted to the requested interest clusters. Exposes grpc.health.v1 and server "
            "reflection; binds loopback unless --host says otherwise. Without --sasrec/--tree it only "
            "validates requests and answers FAILED_PRECONDITION."
        ),
    )
    model = parser.add_argument_group("model")
    model.add_argument("--sasrec", type=Path, help="sasrec artifact (version dir, kind dir or artifacts root)")
    model.add_argument("--tree", type=Path, help="cluster-tree artifact (version dir, kind dir or artifacts root)")
    model.add_argument("--triton-url", default="127.0.0.1:8001", help="Triton gRPC host:port (default: %(default)s)")
    model.add_argument(
        "--planning-level", type=int, default=DEFAULT_PLANNING_LEVEL, help="cluster level (default: %(default)s)"
    )
    model.add_argument(
        "--ann",
        type=Path,
        help="per-cluster ANN indexes (sasrec_ann artifact of `python -m serendip.models.sasrec.ann`, built from "
        "the same --sasrec and --tree); without it every cluster is ranked exactly",
    )
    model.add_argument("--search-threads", type=int, default=1, help=SEARCH_THREADS_HELP)
    add_server_arguments(parser, DEFAULT_PORT)
    args = parser.parse_args(argv)
    if (args.sasrec is None) != (args.tree is None):
        parser.error("--sasrec and --tree go together")
    if args.ann is not None and args.sasrec is None:
        parser.error("--ann needs --sasrec and --tree")
    if args.search_threads < 1:
        parser.error(f"--search-threads must be at least 1, not {args.search_threads}")
    retrieval_model = (
        load_retrieval_model(args.sasrec, args.tree, args.triton_url, args.planning_level, args.ann)
        if args.sasrec
        else None
    )
    threadpool_limits(limits=args.search_threads)  # after loading: FAISS's OpenMP is loaded with the indexes
    gc.freeze()  # the item table and cluster index loaded above never die: keep them out of every collection
    run_service([retriever_binding(RetrieverServicer(retrieval_model))], args)


if __name__ == "__main__":
    main()
