"""``python -m planner``: run the Planner gRPC service on loopback."""

from __future__ import annotations

import argparse
import asyncio
import gc
from pathlib import Path

from planner.loading import load_planner
from planner.planning import PlannerSettings
from planner.service import PlannerServicer, planner_binding
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.store import read_manifest, resolve_artifact
from serendip.service.cli import add_server_arguments
from serendip.service.logs import configure_logging
from serendip.service.server import GrpcService, serve_until_signalled

DEFAULT_PORT = 50061


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m planner",
        description=(
            "serendip.v1.Planner: names interest clusters that are new to the viewer yet related to the "
            "context video (different node at the planning level, same node one level up), from the "
            "precomputed plan table (CACHE), the MLLM on Triton (LIVE) or a log-based policy (FALLBACK). "
            "Exposes grpc.health.v1 and server reflection; binds loopback unless --host says otherwise. "
            "Without --curation it only validates requests and answers FAILED_PRECONDITION."
        ),
    )
    artifacts = parser.add_argument_group("artifacts")
    artifacts.add_argument("--curation", type=Path, help="curation artifact: cluster tree, level, δ, fallback data")
    artifacts.add_argument("--plans", type=Path, help="artifacts root or plans kind dir; new versions hot-reload")
    artifacts.add_argument(
        "--mllm",
        type=Path,
        help="the mllm artifact Triton serves: plan-table versions planned with any other MLLM are not loaded",
    )
    artifacts.add_argument(
        "--items", type=Path, help="items.parquet or world artifact, for LIVE pixels of cache misses"
    )
    artifacts.add_argument("--triton-url", help="Triton gRPC host:port serving the `mllm` model (LIVE); off if unset")
    artifacts.add_argument("--retriever", help="Retriever host:port, needed by Recommend")
    artifacts.add_argument(
        "--overlay",
        type=Path,
        help="artifacts root for the overlay plan table of --mllm: every miss is planned nearline and written there",
    )
    artifacts.add_argument(
        "--live-max-in-flight",
        type=int,
        default=PlannerSettings.live_max_in_flight,
        help="LIVE runs at once; a miss beyond them is FALLBACK at once (default: %(default)s)",
    )
    artifacts.add_argument(
        "--nearline-rest-ratio",
        type=float,
        default=PlannerSettings.nearline_rest_ratio,
        help="after each nearline batch rest this many times its duration; 0 where the MLLM has its own GPU "
        "(default: %(default)s)",
    )
    artifacts.add_argument(
        "--recent-window",
        type=int,
        help="demote the clusters of the last N history items only, none with 0 (default: of the whole history sent)",
    )
    artifacts.add_argument("--plans-poll-s", type=float, default=1.0, help="plan table poll period (default: 1)")
    add_server_arguments(parser, DEFAULT_PORT)
    args = parser.parse_args(argv)
    if args.recent_window is not None and args.recent_window < 0:
        parser.error(f"--recent-window must be >= 0, not {args.recent_window}")
    return args


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM/SIGINT, following new plan-table versions meanwhile."""
    planner = None
    if args.curation is not None:
        mllm_sha256 = read_manifest(resolve_artifact(args.mllm, MLLM_KIND))["content_sha256"] if args.mllm else None
        planner = load_planner(
            args.curation,
            args.plans,
            args.items,
            args.triton_url,
            args.plans_poll_s,
            mllm_sha256=mllm_sha256,
            overlay_root=args.overlay,
            settings=PlannerSettings(
                live_max_in_flight=args.live_max_in_flight,
                nearline_rest_ratio=args.nearline_rest_ratio,
                recent_window=args.recent_window,
            ),
        )
    gc.freeze()  # the tree, plan tables and policy loaded above never die: keep them out of every collection
    service = GrpcService(
        [planner_binding(PlannerServicer(planner, args.retriever))],
        host=args.host,
        port=args.port,
        grace_s=args.grace_s,
        metrics_port=args.metrics_port,
    )
    await serve_until_signalled([service], background=planner.background_work() if planner else [])
    if planner is not None:
        await planner.drain()


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve."""
    args = parse_args(argv)
    configure_logging(args.log_level)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
